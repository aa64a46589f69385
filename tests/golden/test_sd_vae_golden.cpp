// SD-VAE golden parity (tests/golden/data/sd_vae_tiny.safetensors against upstream diffusers' float64 results,
// README_TEXT_AND_VAE.md §5 and §7): every enc.*, dec.* and aux.* tensor within its tolerance through
// `check_file` (what `starflow check-golden` runs), the CompVis/LDM names giving the very same results as the
// diffusers names, and so do the deprecated attention names (query/key/value/proj_attn) in a renamed copy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "core/golden/golden_check.h"
#include "core/golden/sd_vae_check.h"
#include "core/io/safetensors.h"
#include "tests/golden/golden_fixtures.h"

using namespace starflow::core;

namespace {

std::string fixture() { return starflow::testing::golden_fixture("sd_vae_tiny.safetensors"); }

// A copy of the fixture with each tensor renamed by `rename` (empty: dropped); values and dtypes unchanged.
std::string rewritten_fixture(const std::string& tag, const std::function<std::string(const std::string&)>& rename) {
  const io::SafeTensorsFile in = io::SafeTensorsFile::open(fixture());
  std::vector<io::TensorToWrite> out;
  std::vector<std::string> names;
  names.reserve(in.names().size());
  for (const std::string& n : in.names()) {
    names.push_back(rename(n));
    if (names.back().empty()) continue;
    const io::TensorInfo& info = in.info(n);
    const auto bytes = in.raw(n);
    out.push_back({names.back(), info.dtype, info.shape, bytes.data(), bytes.size()});
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("starflow_sd_vae_" + tag + "_" + std::to_string(::getpid()) + ".safetensors"))
                               .string();
  io::write_safetensors(path, out, in.metadata());
  return path;
}

}  // namespace

TEST(SdVaeGolden, EveryTensorWithinTolerance) {
  const golden::Report report = golden::check_file(fixture());
  std::set<std::string> ran;
  for (const auto& g : report.groups) {
    ran.insert(g.group);
    EXPECT_TRUE(g.ran) << g.group;
    EXPECT_TRUE(g.pass()) << g.group << ": max rel " << g.max_rel << " abs " << g.max_abs << " > " << g.tolerance
                          << " (" << g.metric << ")";
  }
  std::vector<std::string> required = {"enc.moments", "enc.mean", "enc.logvar", "enc.std", "enc.sample",
                                       "enc.latent_scaled", "dec.sample", "dec.roundtrip", "aux.enc.conv_in",
                                       "aux.enc.mid_attn", "aux.enc.mid", "aux.enc.conv_out",
                                       "aux.dec.post_quant_conv", "aux.dec.conv_in", "aux.dec.mid_attn", "aux.dec.mid",
                                       "ldm.* names = param.* names"};
  for (int i = 0; i < 3; ++i) {
    required.push_back("aux.enc.down." + std::to_string(i));
    required.push_back("aux.dec.up." + std::to_string(i));
  }
  for (const std::string& g : required) EXPECT_TRUE(ran.count(g)) << "group " << g << " did not run";
  EXPECT_EQ(report.groups.size(), required.size());
  std::cout << golden::format_report(report);
}

TEST(SdVaeGolden, DeprecatedAttentionNamesGiveIdenticalResults) {
  const std::string renamed = rewritten_fixture("deprecated", [](const std::string& n) {
    if (!n.starts_with("param.")) return n;
    std::string r = n;
    for (auto [from, to] : {std::pair{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
                            {".to_out.0.", ".proj_attn."}})
      if (const size_t at = r.find(from); at != std::string::npos) r.replace(at, std::string(from).size(), to);
    return r;
  });
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(renamed);
  ASSERT_TRUE(file.has("param.decoder.mid_block.attentions.0.proj_attn.weight"));
  ASSERT_FALSE(file.has("param.decoder.mid_block.attentions.0.to_out.0.weight"));
  const auto ours = golden::compute_sd_vae_results(file, "param.");
  const auto reference = golden::compute_sd_vae_results(io::SafeTensorsFile::open(fixture()), "param.");
  ASSERT_EQ(ours.size(), reference.size());
  for (const auto& [name, values] : reference) EXPECT_EQ(ours.at(name), values) << name;
  // And the whole check passes on the renamed file.
  EXPECT_TRUE(golden::check_file(renamed).pass());
  std::filesystem::remove(renamed);
}

TEST(SdVaeGolden, AMissingParameterIsOneLineNamingIt) {
  const std::string broken = rewritten_fixture("missing", [](const std::string& n) {
    return n == "param.encoder.mid_block.attentions.0.to_k.bias" ? std::string() : n;
  });
  try {
    golden::check_file(broken);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()),
              broken + ": no tensor 'param.encoder.mid_block.attentions.0.to_k.bias' (nor its deprecated/LDM names)");
  }
  std::filesystem::remove(broken);
}
