// The table of `starflow` subcommands. Each entry's run() receives argv with argv[0] = command name.
#pragma once
#include <span>

namespace starflow::tools {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

std::span<const Command> commands();

}  // namespace starflow::tools
