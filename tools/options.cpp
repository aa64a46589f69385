// Option-table parsing and usage generation.
#include "tools/options.h"

#include <cstdio>
#include <stdexcept>

namespace starflow::tools {

double parse_double(const std::string& s) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size()) throw std::invalid_argument("expected a number, got '" + s + "'");
  return v;
}

long long parse_int(const std::string& s) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size()) throw std::invalid_argument("expected an integer, got '" + s + "'");
  return v;
}

Option int_option(const char* name, int& target, int min_value, const char* help) {
  return {name, "N", help, [&target, min_value](const std::string& v) {
            const long long x = parse_int(v);
            if (x < min_value || x > 1000000000) throw std::invalid_argument("expected an integer >= " + std::to_string(min_value));
            target = static_cast<int>(x);
          }};
}

namespace {
void print_usage(FILE* out, const char* command, const char* synopsis, std::span<const Option> options) {
  std::fprintf(out, "usage: starflow %s [options]\n%s\n\noptions:\n", command, synopsis);
  for (const Option& o : options) {
    std::string left = std::string(o.name) + (o.value_name ? std::string(" ") + o.value_name : "");
    std::fprintf(out, "  %-24s %s\n", left.c_str(), o.help);
  }
}
}  // namespace

int parse_options(const char* command, const char* synopsis, std::span<const Option> options, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout, command, synopsis, options);
      return 0;
    }
    const Option* match = nullptr;
    for (const Option& o : options)
      if (arg == o.name) match = &o;
    if (!match) {
      std::fprintf(stderr, "starflow %s: unknown option '%s' (see 'starflow %s --help')\n", command, arg.c_str(),
                   command);
      return 2;
    }
    std::string value;
    if (match->value_name) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "starflow %s: %s needs a value (%s)\n", command, match->name, match->value_name);
        return 2;
      }
      value = argv[++i];
    }
    try {
      match->set(value);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "starflow %s: %s: %s\n", command, match->name, e.what());
      return 2;
    }
  }
  return -1;
}

}  // namespace starflow::tools
