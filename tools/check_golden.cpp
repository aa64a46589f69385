// starflow check-golden FILE.safetensors...: recompute every group a fixture holds and print the error
// table; exit 1 when a group is out of tolerance, 2 on unreadable or inconsistent input.
#include <cstdio>
#include <cstring>
#include <exception>
#include <algorithm>

#include "core/golden/golden_check.h"

namespace starflow::tools {

int run_check_golden(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help")) {
    std::fprintf(argc < 2 ? stderr : stdout,
                 "usage: starflow check-golden FILE.safetensors [FILE...]\n"
                 "  Builds the model described by each file's 'config' metadata (official ml-starflow keys), loads\n"
                 "  its param.* tensors and inputs, recomputes every result group present (forward, loss, grad,\n"
                 "  aux.rope, adamw1, ...) and prints max |diff| per group against the file's tolerances.\n"
                 "  The SD-VAE fixture (sd_vae_tiny.safetensors) runs the VAE from its diffusers (param.*) and\n"
                 "  CompVis/LDM (ldm.*) names and compares enc.*, dec.* and aux.*.\n");
    return argc < 2 ? 2 : 0;
  }
  int status = 0;
  for (int i = 1; i < argc; ++i) {
    try {
      const core::golden::Report report = core::golden::check_file(argv[i]);
      std::fputs(core::golden::format_report(report).c_str(), stdout);
      if (!report.pass()) status = std::max(status, 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "check-golden: %s\n", e.what());
      status = 2;
    }
  }
  return status;
}

}  // namespace starflow::tools
