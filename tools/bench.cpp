// starflow bench ...
#include <cstdio>
namespace starflow::tools {
int run_bench(int argc, char** argv) {
  std::fprintf(stderr, "bench: not yet built\n");
  return 2;
}
}  // namespace starflow::tools
