// The subcommand tables: adding a command means adding one line here.
#include "tools/commands.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/gemm.h"

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
int run_preflight(int argc, char** argv);
int bench_gemm(int argc, char** argv);
int bench_train(int argc, char** argv);
int bench_sample(int argc, char** argv);
int bench_data(int argc, char** argv);
int bench_checkpoint(int argc, char** argv);
int bench_parallel(int argc, char** argv);
int bench_conv(int argc, char** argv);
int bench_encoders(int argc, char** argv);

// "benchmarks, ...: gemm, train, ..." from the bench table itself.
std::string bench_summary() {
  std::string names;
  for (const Command& b : bench_commands()) names += (names.empty() ? "" : ", ") + std::string(b.name);
  return "benchmarks, each against a reference measured in the same run: " + names + " ('starflow bench --help')";
}

std::span<const Command> commands() {
  static const std::string bench = bench_summary();
  static const Command table[] = {
      {"demo", "the pipeline on embedded data: preprocess and train on 2 ranks, sample a guided grid, evaluate "
               "(--dataset fashion-mnist | emoji)", run_demo},
      {"check-golden", "compare the model against a golden fixture file (.safetensors)", run_check_golden},
      {"preprocess", "encode a dataset into HDF5 latent shards (MPI ranks, SLURM arrays; resumable)", run_preprocess,
       true},
      {"train-ae", "train the convolutional autoencoder and report its held-out reconstruction error", run_train_ae},
      {"train", "train a model (under mpirun: data-parallel ranks); resumes from the newest checkpoint", run_train,
       true},
      {"sample", "sample latents from a model (sequential or Jacobi, guided, denoised)", run_sample, true},
      {"preflight", "check every rank's node before training (GEMM, links, checkpoint directory, shards)",
       run_preflight, true},
      {"inspect", "print a checkpoint's header (step, config, data cursor, tensor index)", run_inspect},
      {"convert", "export a checkpoint's weights to safetensors under the official names", run_convert},
      {"submit", "render and submit a SLURM job: submit train|preprocess|sample INPUT [--nodes N ...] [--dry-run]",
       run_submit},
      {"plan", "predict memory, step time and MFU of each TP x DP (x ZeRO-1) layout on a GPU cluster", run_plan},
      {"bench", bench.c_str(), run_bench, true},
  };
  return table;
}

std::span<const Command> bench_commands() {
  static const Command table[] = {
      {"gemm", "float GEMM at the training shapes: OpenBLAS against Eigen", bench_gemm},
      {"conv", "conv2d forward at the SD VAE's shapes against PyTorch", bench_conv},
      {"encoders", "flan-t5-xl and sd-vae-ft-ema at their real sizes against PyTorch", bench_encoders},
      {"train", "CPU training step on configs A and B against the PyTorch reference", bench_train},
      {"sample", "sequential and Jacobi sampling with and without guidance against the PyTorch reference", bench_sample},
      {"checkpoint",
       "MPI-IO checkpoint write MB/s against a plain write; --train: training blocked, sync vs async (mpirun -np 2)",
       bench_checkpoint, true},
      {"data", "latent-shard reader samples/s on one core against the rate a training step needs", bench_data},
      {"parallel", "training step at 1 rank, DP 2 and TP 2, and the hidden share of the DP all-reduce (mpirun -np 2)",
       bench_parallel, true},
  };
  return table;
}

int run_bench(int argc, char** argv) { return dispatch("starflow bench", bench_commands(), argc, argv); }

void print_usage(FILE* out, const char* program, std::span<const Command> table) {
  std::fprintf(out, "usage: %s <command> [args]\n\ncommands:\n", program);
  for (const Command& c : table) std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
  std::fprintf(out, "\n'%s <command> --help' describes one command.\n", program);
}

int dispatch(const char* program, std::span<const Command> table, int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage(argc < 2 ? stderr : stdout, program, table);
    return argc < 2 ? 2 : 0;
  }
  try {  // the CPU kernel and GEMM choices read the environment once: a bad value stops here, not in a kernel
    core::cpu::cpu_isa();
    core::cpu::gemm_backend();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  }
  for (const Command& c : table) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    const Launch launch = launched_ranks();
    if (!c.ranks && launch.size > 1) {
      if (launch.rank == 0)
        std::fprintf(stderr, "%s %s: launched as %d ranks, but it runs as one process (each rank would do the "
                     "same work and write the same files): run it without mpirun/srun\n", program, c.name, launch.size);
      return 2;
    }
    return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "%s: unknown command '%s' (see '%s --help')\n", program, argv[1], program);
  return 2;
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
