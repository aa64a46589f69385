// A small command-line option table: the parser and the usage text are generated from the same entries,
// so the help never drifts from what is accepted.
#pragma once
#include <functional>
#include <span>
#include <string>

namespace starflow::tools {

struct Option {
  const char* name;        // "--cfg"
  const char* value_name;  // "W", or nullptr for a flag without a value
  const char* help;
  std::function<void(const std::string& value)> set;  // throws std::invalid_argument on a bad value
};

// Parses argv[1..] (argv[0] is the command name). Returns -1 when parsing succeeded and the command should
// run, otherwise the exit status to return (0 after --help, 2 after printing a one-line error).
int parse_options(const char* command, const char* synopsis, std::span<const Option> options, int argc, char** argv);

// An integer option with a lower bound, written into `target` (the table entry keeps a reference to it).
Option int_option(const char* name, int& target, int min_value, const char* help);

// Value converters that throw std::invalid_argument("expected ...") on malformed input.
double parse_double(const std::string& s);
long long parse_int(const std::string& s);

}  // namespace starflow::tools
