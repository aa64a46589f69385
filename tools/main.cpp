// The `starflow` command: one binary, subcommands from one table (usage is generated from it).
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/commands.h"

namespace {

using starflow::tools::Command;

void print_usage(FILE* out) {
  std::fprintf(out, "usage: starflow <command> [args]\n\ncommands:\n");
  for (const Command& c : starflow::tools::commands())
    std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
  std::fprintf(out, "\n'starflow <command> --help' describes one command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : starflow::tools::commands())
    if (std::string(argv[1]) == c.name) return c.run(argc - 1, argv + 1);
  std::fprintf(stderr, "starflow: unknown command '%s' (see 'starflow --help')\n", argv[1]);
  return 2;
}
