// The `starflow` command: one binary, subcommands from one table (usage is generated from it).
#include <malloc.h>

#include "tools/commands.h"

namespace {

// glibc hands freed blocks above 128 KB back to the kernel (munmap, or a trim of the heap top), so every
// sampling call re-faults its ~10 MB of KV caches page by page (~2,300 faults per guided 16-image call on
// config A, 2-4% of its time). Blocks up to 32 MB come from the heap and up to 1 GB of freed memory stays
// in the process for the next call, as jemalloc/tcmalloc would keep it. (Training allocates once.)
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  return starflow::tools::dispatch("starflow", starflow::tools::commands(), argc, argv);
}
