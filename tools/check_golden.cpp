// starflow check-golden FILE.safetensors
#include <cstdio>
namespace starflow::tools {
int run_check_golden(int argc, char** argv) {
  std::fprintf(stderr, "check-golden: not yet built\n");
  return 2;
}
}  // namespace starflow::tools
