// The template renderer: one pass over lines, a stack of open sections.
#include "slurm/script_template.h"

#include <stdexcept>
#include <vector>

namespace starflow::slurm {
namespace {

struct Section {
  std::string name;
  bool keep;
  int line;
};

// "{{#NAME}}", "{{^NAME}}" or "{{/NAME}}" alone on a line (blanks around allowed): returns '#', '^' or '/'
// and the name; 0 for any other line.
char section_marker(std::string_view line, std::string& name) {
  const size_t first = line.find_first_not_of(" \t");
  const size_t last = line.find_last_not_of(" \t");
  if (first == std::string_view::npos) return 0;
  const std::string_view t = line.substr(first, last - first + 1);
  if (t.size() < 6 || t.substr(0, 2) != "{{" || t.substr(t.size() - 2) != "}}") return 0;
  if (t[2] != '#' && t[2] != '^' && t[2] != '/') return 0;
  name = std::string(t.substr(3, t.size() - 5));
  return t[2];
}

}  // namespace

std::string render_template(std::string_view text, const TemplateValues& values, const std::string& origin) {
  auto fail = [&](int line, const std::string& what) -> std::runtime_error {
    return std::runtime_error(origin + ":" + std::to_string(line) + ": " + what);
  };
  auto lookup = [&](int line, const std::string& name) -> const std::string& {
    auto it = values.find(name);
    if (it == values.end()) throw fail(line, "unknown template value '{{" + name + "}}'");
    return it->second;
  };
  std::string out;
  std::vector<Section> open;
  int number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    const bool has_newline = end != std::string_view::npos;
    if (!has_newline) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    std::string name;
    if (const char marker = section_marker(line, name)) {
      if (marker != '/') {
        const bool parent_keeps = open.empty() || open.back().keep;
        const bool has_value = !lookup(number, name).empty();
        open.push_back({name, parent_keeps && has_value == (marker == '#'), number});
      } else {
        if (open.empty() || open.back().name != name) throw fail(number, "'{{/" + name + "}}' closes no open section");
        open.pop_back();
      }
      continue;
    }
    std::string rendered;
    size_t at = 0;
    while (true) {
      const size_t start = line.find("{{", at);
      if (start == std::string_view::npos) {
        rendered += line.substr(at);
        break;
      }
      const size_t close = line.find("}}", start);
      if (close == std::string_view::npos) throw fail(number, "'{{' without '}}'");
      rendered += line.substr(at, start - at);
      rendered += lookup(number, std::string(line.substr(start + 2, close - start - 2)));
      at = close + 2;
    }
    if (open.empty() || open.back().keep) out += rendered + (has_newline ? "\n" : "");
  }
  if (!open.empty()) throw fail(open.back().line, "section '{{#" + open.back().name + "}}' is never closed");
  return out;
}

std::string shell_quote(const std::string& word) {
  // No '=': a command word containing one would be read as an assignment.
  static const std::string plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+.,:/@%";
  if (!word.empty() && word.find_first_not_of(plain) == std::string::npos) return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace starflow::slurm
