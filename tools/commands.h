// The tables of `starflow` subcommands (and of `starflow bench`'s benchmarks): the dispatcher and the usage
// text are both generated from them, so `--help` lists exactly what is accepted.
#pragma once
#include <cstdio>
#include <span>
#include <string>

namespace starflow::tools {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);  // receives argv with argv[0] = the command's name
  // Runs as MPI ranks under mpirun/srun. The others run as one process: launched as several ranks, each
  // would do the same work and write the same files, so the dispatcher refuses them.
  bool ranks = false;
};

std::span<const Command> commands();        // starflow <command>
std::span<const Command> bench_commands();  // starflow bench <benchmark>

// Runs the entry of `table` named argv[1] with argv + 1 (`program` is "starflow" or "starflow bench"); prints the
// usage for --help (0) or a missing or unknown name (2).
int dispatch(const char* program, std::span<const Command> table, int argc, char** argv);
void print_usage(FILE* out, const char* program, std::span<const Command> table);

// This process's place in a launch by mpirun/mpiexec (Open MPI, MPICH/Hydra) or srun, read from the
// launcher's environment: size 1 when not launched as ranks.
struct Launch {
  int rank = 0, size = 1;
};
Launch launched_ranks();

}  // namespace starflow::tools
