// The subcommand table: adding a command means adding one line here.
#include "tools/commands.h"

#include <cstdlib>
#include <algorithm>
#include <string>

namespace starflow::tools {

int run_check_golden(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_sample(int argc, char** argv);
int run_train(int argc, char** argv);
int run_preprocess(int argc, char** argv);
int run_train_ae(int argc, char** argv);
int run_demo(int argc, char** argv);
int run_inspect(int argc, char** argv);
int run_convert(int argc, char** argv);
int run_submit(int argc, char** argv);
int run_plan(int argc, char** argv);

std::span<const Command> commands() {
  static const Command table[] = {
      {"demo", "Fashion-MNIST end to end: preprocess, train on 2 ranks, sample a grid, evaluate", run_demo},
      {"check-golden", "compare the model against a golden fixture file (.safetensors)", run_check_golden},
      {"preprocess", "encode a dataset into HDF5 latent shards (MPI ranks, SLURM arrays; resumable)", run_preprocess,
       true},
      {"train-ae", "train the convolutional autoencoder and report its held-out reconstruction error", run_train_ae},
      {"train", "train a model (under mpirun: data-parallel ranks); resumes from the newest checkpoint", run_train,
       true},
      {"sample", "sample latents from a model (sequential or Jacobi, guided, denoised)", run_sample, true},
      {"inspect", "print a checkpoint's header (step, config, data cursor, tensor index)", run_inspect},
      {"convert", "export a checkpoint's weights to safetensors under the official names", run_convert},
      {"submit", "render and submit a SLURM job: submit train|preprocess|sample INPUT [--nodes N ...] [--dry-run]",
       run_submit},
      {"plan", "predict memory, step time and MFU of each TP x DP (x ZeRO-1) layout on a GPU cluster", run_plan},
      {"bench", "benchmarks: bench gemm | bench train", run_bench, true},
  };
  return table;
}

Launch launched_ranks() {
  // (rank, size) variable pairs: Open MPI's mpirun, MPICH/Hydra and srun --mpi=pmi2, srun itself.
  static const char* const pairs[][2] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"PMI_RANK", "PMI_SIZE"}, {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS"}};
  for (const auto& p : pairs) {
    const char *rank = std::getenv(p[0]), *size = std::getenv(p[1]);
    if (rank && size) return {std::atoi(rank), std::max(1, std::atoi(size))};
  }
  return {};
}

}  // namespace starflow::tools
