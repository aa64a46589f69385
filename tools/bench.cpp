// starflow bench <what>: benchmark commands. Each prints a table; speed is reported as a ratio against a
// reference measured in the same run (the machines are shared and noisy).
#include <cstdio>
#include <cstring>
#include <string>

namespace starflow::tools {

int bench_gemm(int argc, char** argv);
int bench_train(int argc, char** argv);
int bench_sample(int argc, char** argv);
int bench_data(int argc, char** argv);
int bench_checkpoint(int argc, char** argv);
int bench_parallel(int argc, char** argv);

namespace {
struct BenchEntry {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};
const BenchEntry kBenches[] = {
    {"gemm", "float GEMM at the training shapes: OpenBLAS against Eigen", bench_gemm},
    {"train", "CPU training step on configs A and B against the PyTorch reference", bench_train},
    {"checkpoint", "MPI-IO checkpoint write MB/s against a plain sequential write of the same bytes", bench_checkpoint},
    {"data", "latent-shard reader samples/s on one core against the rate a training step needs", bench_data},
    {"parallel", "training step at 1 rank, DP 2 and TP 2, and the hidden share of the DP all-reduce (mpirun -np 2)",
     bench_parallel},
    {"sample", "sequential and Jacobi sampling with and without guidance against the PyTorch reference", bench_sample},
};
}  // namespace

int run_bench(int argc, char** argv) {
  if (argc >= 2)
    for (const BenchEntry& b : kBenches)
      if (std::string(argv[1]) == b.name) return b.run(argc - 1, argv + 1);
  std::fprintf(argc >= 2 && std::strcmp(argv[1], "--help") ? stderr : stdout, "usage: starflow bench <what> [args]\n");
  for (const BenchEntry& b : kBenches) std::fprintf(stdout, "  %-8s %s\n", b.name, b.summary);
  return argc >= 2 && !std::strcmp(argv[1], "--help") ? 0 : 2;
}

}  // namespace starflow::tools
