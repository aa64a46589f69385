// The table of `starflow` subcommands. Each entry's run() receives argv with argv[0] = command name.
#pragma once
#include <span>

namespace starflow::tools {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
  // Runs as MPI ranks under mpirun/srun. The others run as one process: launched as several ranks, each
  // would do the same work and write the same files, so main() refuses them.
  bool ranks = false;
};

std::span<const Command> commands();

// This process's place in a launch by mpirun/mpiexec (Open MPI, MPICH/Hydra) or srun, read from the
// launcher's environment: size 1 when not launched as ranks.
struct Launch {
  int rank = 0, size = 1;
};
Launch launched_ranks();

}  // namespace starflow::tools
