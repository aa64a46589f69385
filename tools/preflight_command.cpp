// starflow preflight CONFIG.yaml: every rank of a training job checks its node (GEMM rate, neighbour link,
// checkpoint directory, its first and last shard) and rank 0 prints one table; exit 3 names the bad hosts so
// the job can be resubmitted without them (the sbatch template runs this before training).
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "jobs/preflight.h"
#include "jobs/train_config.h"
#include "parallel/error_agreement.h"
#include "tools/cpu_threads.h"
#include "tools/mpi_session.h"
#include "tools/options.h"

namespace starflow::tools {

int run_preflight(int argc, char** argv) {
  std::string config_path;
  // Set on the command line; the rest come from the config's preflight_* keys.
  double expect_gflops = -1, slow = -1, expect_write = 0;
  jobs::PreflightOptions o;
  const Option options[] = {
      {"--config", "FILE", "the training config (YAML; also accepted as the first argument)",
       [&](const std::string& v) { config_path = v; }},
      {"--gemm", "N", "the GEMM is N×N×N floats (default 1024)", [&](const std::string& v) { o.gemm_size = parse_int(v); }},
      {"--expect-gflops", "X",
       "the node type's expected GEMM rate (default: the config's preflight_expect_gflops, else the median of the "
       "job's ranks)",
       [&](const std::string& v) { expect_gflops = parse_double(v); }},
      {"--expect-write-mbs", "X", "the checkpoint file system's expected write MB/s per rank (default: not judged)",
       [&](const std::string& v) { expect_write = parse_double(v); }},
      {"--allreduce-mb", "N", "the ring all-reduce's size in MiB (default 64)",
       [&](const std::string& v) { o.allreduce_mb = parse_int(v); }},
      {"--io-mb", "N", "MiB written to and read back from the checkpoint directory (default 64)",
       [&](const std::string& v) { o.io_mb = parse_int(v); }},
      {"--slow", "F", "a figure below F times the expected one is slow; 0: never (default: the config's "
                      "preflight_slow, 0.7)",
       [&](const std::string& v) { slow = parse_double(v); }},
  };
  std::vector<char*> args(argv, argv + argc);
  if (argc >= 2 && argv[1][0] != '-') {
    config_path = argv[1];
    args.erase(args.begin() + 1);
  }
  const int parsed = parse_options("preflight",
                                   "Checks every rank's node before training: starflow preflight CONFIG.yaml [options]",
                                   options, static_cast<int>(args.size()), args.data());
  if (parsed >= 0) return parsed;
  if (config_path.empty()) {
    std::fprintf(stderr, "starflow preflight: no config given (starflow preflight CONFIG.yaml)\n");
    return 2;
  }
  if (o.gemm_size < 16 || o.allreduce_mb < 1 || o.io_mb < 4 || slow >= 1 || expect_write < 0) {
    std::fprintf(stderr, "starflow preflight: --gemm >= 16, --allreduce-mb >= 1, --io-mb >= 4, 0 <= --slow < 1, "
                         "--expect-write-mbs >= 0\n");
    return 2;
  }
  MpiSession mpi(argc, argv);
  int status = 0;
  try {
    // A config that does not parse is the same error on every rank: rank 0 reports it.
    const jobs::TrainConfig cfg = jobs::TrainConfig::from_file(config_path);
    const jobs::PreflightOptions from_config = jobs::preflight_options(cfg);
    o.slow_fraction = slow >= 0 ? slow : from_config.slow_fraction;
    o.expect_gflops = expect_gflops >= 0 ? expect_gflops : from_config.expect_gflops;
    o.expect_write_mbs = expect_write;
    set_cpu_threads(threads_per_rank(static_cast<int>(cfg.threads)));
    const jobs::PreflightReport report = jobs::run_preflight(cfg, o, MPI_COMM_WORLD);
    if (mpi.rank() == 0) {
      std::printf("%s", jobs::format_preflight(report).c_str());
      std::fflush(stdout);
    }
    status = report.ok() ? 0 : 3;
  } catch (const std::exception& e) {
    if (mpi.rank() == 0) std::fprintf(stderr, "starflow preflight: %s\n", e.what());
    status = 2;
  }
  return status;
}

}  // namespace starflow::tools
