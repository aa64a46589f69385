// The `starflow` command: one binary, subcommands from one table (usage is generated from it).
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "tools/commands.h"

namespace {

using starflow::tools::Command;

// glibc hands freed blocks above 128 KB back to the kernel (munmap, or a trim of the heap top), so every
// sampling call re-faults its ~10 MB of KV caches page by page (~2,300 faults per guided 16-image call on
// config A, 2-4% of its time). Blocks up to 32 MB come from the heap and up to 1 GB of freed memory stays
// in the process for the next call, as jemalloc/tcmalloc would keep it. (Training allocates once.)
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void print_usage(FILE* out) {
  std::fprintf(out, "usage: starflow <command> [args]\n\ncommands:\n");
  for (const Command& c : starflow::tools::commands())
    std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
  std::fprintf(out, "\n'starflow <command> --help' describes one command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : starflow::tools::commands()) {
    if (std::string(argv[1]) != c.name) continue;
    const auto launch = starflow::tools::launched_ranks();
    if (!c.ranks && launch.size > 1) {
      if (launch.rank == 0)
        std::fprintf(stderr, "starflow %s: launched as %d ranks, but it runs as one process (each rank would do the "
                     "same work and write the same files): run it without mpirun/srun\n", c.name, launch.size);
      return 2;
    }
    return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "starflow: unknown command '%s' (see 'starflow --help')\n", argv[1]);
  return 2;
}
