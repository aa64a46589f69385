// The SD-VAE golden fixture (tests/golden/data/sd_vae_tiny.safetensors, README_TEXT_AND_VAE.md §5): the CPU float
// VAE rebuilt from the fixture's config, loaded once from the diffusers names (param.*) and once from the
// CompVis/LDM names (ldm.*), its encoder, posterior and decoder results compared with upstream diffusers' float64
// ones: enc.* within 3e-5·max|ref|, dec.* and aux.* within 5e-5·max|ref|, and the ldm.* run identical to the
// param.* run.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/golden/golden_check.h"
#include "core/io/safetensors.h"

namespace starflow::core::golden {

constexpr double kTolVaeEncoder = 3e-5, kTolVaeDecoder = 5e-5;

// Whether a fixture is the SD-VAE's (it has the encoder's results).
bool is_sd_vae_fixture(const io::SafeTensorsFile& file);

// Every result the fixture holds (enc.*, dec.*, aux.*), recomputed by the CPU float VAE with its parameters read
// under `prefix` ("param." or "ldm."), under the fixture's tensor names.
std::map<std::string, std::vector<double>> compute_sd_vae_results(const io::SafeTensorsFile& file,
                                                                  const std::string& prefix);

// The report: one group per fixture tensor of the param.* run, then "ldm names = param names" (max |Δ| between
// the two runs over every result, which must be 0).
Report check_sd_vae_file(const std::string& path);

}  // namespace starflow::core::golden
