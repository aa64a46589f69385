// `starflow demo`: the whole pipeline on Fashion-MNIST in one command — preprocess with the bundled
// autoencoder, train a class-conditional deep-shallow STARFlow on 2 MPI ranks, sample a 10×10 guided grid
// (one row per class), and evaluate held-out NLL and the Bayes classifier (argmin over classes of the NLL).
#pragma once
#include <cstdint>
#include <string>

namespace starflow::jobs {

struct DemoOptions {
  std::string out_dir = "out/demo";
  std::string binary;       // this starflow executable (for the mpirun child)
  int ranks = 2;
  int64_t steps = 900;
  int64_t eval_samples = 1000;
  double cfg = 2.0;
  uint64_t seed = 0;
};

// Returns the process exit status; prints progress and the summary, writes summary.json.
int run_demo(const DemoOptions& options);

}  // namespace starflow::jobs
