// check_file(): the CPU float model against a fixture (check_model in golden_check_impl.h), and the report.
#include "core/golden/golden_check.h"

#include <cstdio>

#include "core/golden/golden_check_impl.h"
#include "core/golden/sd_vae_check.h"
#include "core/golden/t5_check.h"

namespace starflow::core::golden {

Report check_file(const std::string& path) {
  // The SD-VAE fixture has a checker of its own (core/golden/sd_vae_check.h).
  if (is_sd_vae_fixture(io::SafeTensorsFile::open(path))) return check_sd_vae_file(path);
  // So do the T5 tokenizer and encoder fixtures (core/golden/t5_check.h).
  if (is_t5_fixture(io::SafeTensorsFile::open(path))) return check_t5_file(path);
  return check_model<CpuBackend<float>>(path, Precision::kFloat32);
}

bool Report::pass() const {
  for (const auto& g : groups)
    if (!g.pass()) return false;
  return true;
}

std::string format_report(const Report& report) {
  std::string out = report.file + "\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-36s %7s %12s %12s %10s  %-6s %s\n", "group", "tensors", "max|d|",
                "max|d|/|ref|", "tolerance", "result", "worst tensor");
  out += line;
  for (const GroupResult& g : report.groups) {
    if (!g.ran) {
      std::snprintf(line, sizeof line, "  %-36s %7d %12s %12s %10s  %-6s %s\n", g.group.c_str(), g.tensors, "-", "-",
                    "-", "SKIP", g.note.c_str());
    } else {
      char tol[32];
      std::snprintf(tol, sizeof tol, "%.0e %s", g.tolerance, g.metric.c_str());
      std::snprintf(line, sizeof line, "  %-36s %7d %12.3e %12.3e %10s  %-6s %s\n", g.group.c_str(), g.tensors,
                    g.max_abs, g.max_rel, tol, g.pass() ? "ok" : "FAIL", g.worst.c_str());
    }
    out += line;
  }
  out += report.pass() ? "  PASS\n" : "  FAIL\n";
  return out;
}

}  // namespace starflow::core::golden
