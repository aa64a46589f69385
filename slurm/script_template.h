// A deliberately tiny template language for the sbatch scripts in slurm/templates/, so that a template reads
// like the script it becomes: {{NAME}} is replaced by a value; lines between {{#NAME}} and {{/NAME}} (each
// alone on its line) are kept only when NAME's value is non-empty, and lines between {{^NAME}} and
// {{/NAME}} only when it is empty. Anything else is an error, so a typo in a template fails loudly instead
// of submitting a broken job.
#pragma once
#include <map>
#include <string>
#include <string_view>

namespace starflow::slurm {

using TemplateValues = std::map<std::string, std::string>;

// Throws std::runtime_error("<origin>:<line>: ...") for an unknown name, an unclosed or mismatched section,
// or a stray "{{".
std::string render_template(std::string_view text, const TemplateValues& values, const std::string& origin);

// Quotes a word for bash: plain words stay as they are, anything else goes in single quotes.
std::string shell_quote(const std::string& word);

}  // namespace starflow::slurm
