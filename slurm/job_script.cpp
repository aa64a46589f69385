// Request checking and script rendering for `starflow submit`.
#include "slurm/job_script.h"

#include <algorithm>
#include <regex>
#include <stdexcept>

#include "slurm/script_template.h"

namespace starflow::slurm {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

// Names that go into #SBATCH lines and file names unquoted.
bool is_plain_name(const std::string& s, bool allow_comma) {
  static const std::regex plain("[A-Za-z0-9_.+-]+"), plain_list("[A-Za-z0-9_.+,-]+");
  return std::regex_match(s, allow_comma ? plain_list : plain);
}

// Seconds in a SLURM time limit; -1 for UNLIMITED; nullopt when malformed.
std::optional<int64_t> time_limit_seconds(const std::string& t) {
  if (t == "UNLIMITED" || t == "INFINITE" || t == "unlimited" || t == "infinite") return -1;
  std::smatch m;
  static const std::regex with_days(R"((\d+)-(\d+)(?::(\d+))?(?::(\d+))?)");
  static const std::regex without_days(R"((\d+)(?::(\d+))?(?::(\d+))?)");
  auto num = [](const std::ssub_match& s) { return s.matched ? std::stoll(s.str()) : 0LL; };
  if (std::regex_match(t, m, with_days)) return ((num(m[1]) * 24 + num(m[2])) * 60 + num(m[3])) * 60 + num(m[4]);
  if (!std::regex_match(t, m, without_days)) return std::nullopt;
  if (m[3].matched) return (num(m[1]) * 60 + num(m[2])) * 60 + num(m[3]);  // H:M:S
  return num(m[1]) * 60 + num(m[2]);                                         // M or M:S
}

std::string join_quoted(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += " " + shell_quote(w);
  return out;
}

}  // namespace

std::optional<JobKind> parse_job_kind(const std::string& name) {
  if (name == "train") return JobKind::train;
  if (name == "preprocess") return JobKind::preprocess;
  if (name == "sample") return JobKind::sample;
  return std::nullopt;
}

const char* job_kind_name(JobKind kind) {
  switch (kind) {
    case JobKind::train: return "train";
    case JobKind::preprocess: return "preprocess";
    case JobKind::sample: return "sample";
  }
  return "?";
}

bool is_time_limit(const std::string& text) { return time_limit_seconds(text).has_value(); }

int64_t highest_array_index(const std::string& spec) {
  static const std::regex shape(R"(\d+(-\d+(:\d+)?)?(,\d+(-\d+(:\d+)?)?)*(%\d+)?)");
  if (!std::regex_match(spec, shape))
    bad("--array: expected indices like 0-7, 1,4,9, 0-15:2 or 0-99%10, got '" + spec + "'");
  const std::string list = spec.substr(0, spec.find('%'));
  static const std::regex range(R"((\d+)(?:-(\d+)(?::(\d+))?)?)");
  int64_t highest = -1;
  for (std::sregex_iterator it(list.begin(), list.end(), range), end; it != end; ++it) {
    const int64_t first = std::stoll((*it)[1]);
    const int64_t last = (*it)[2].matched ? std::stoll((*it)[2]) : first;
    const int64_t step = (*it)[3].matched ? std::stoll((*it)[3]) : 1;
    if (last < first) bad("--array: range " + it->str() + " runs backwards");
    if (step < 1) bad("--array: step of " + it->str() + " must be >= 1");
    highest = std::max(highest, first + (last - first) / step * step);
  }
  return highest;
}

void complete_and_check(JobRequest& r) {
  const std::string kind = job_kind_name(r.kind);
  if (r.input.empty() || r.input[0] != '/') bad("the " + kind + " input must be an absolute path");
  if (r.nodes < 1) bad("--nodes must be >= 1, got " + std::to_string(r.nodes));
  if (r.gpus_per_node < 0) bad("--gpus-per-node must be >= 0, got " + std::to_string(r.gpus_per_node));
  if (r.ntasks_per_node == 0) r.ntasks_per_node = r.gpus_per_node > 0 ? r.gpus_per_node : 1;
  if (r.ntasks_per_node < 1) bad("--ntasks-per-node must be >= 1, got " + std::to_string(r.ntasks_per_node));
  if (r.cpus_per_task < 1) bad("--cpus-per-task must be >= 1, got " + std::to_string(r.cpus_per_task));
  // Each rank drives one GPU (the CUDA backend and NCCL assume it); anything else idles or shares GPUs.
  if (r.gpus_per_node > 0 && r.kind != JobKind::sample && r.ntasks_per_node != r.gpus_per_node)
    bad("--ntasks-per-node (" + std::to_string(r.ntasks_per_node) + ") must equal --gpus-per-node (" +
        std::to_string(r.gpus_per_node) + "): one rank per GPU");
  if (r.kind == JobKind::sample && r.total_tasks() != 1)
    bad("sampling runs as one process: use --nodes 1 --ntasks-per-node 1 (got " + std::to_string(r.total_tasks()) +
        " tasks)");
  std::optional<int64_t> limit;
  if (!r.time.empty() && !(limit = time_limit_seconds(r.time)))
    bad("--time: expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, got '" + r.time + "'");
  if (r.signal_seconds < 1 || r.signal_seconds > 65535)
    bad("--signal-seconds must be in [1, 65535] (SLURM's limit), got " + std::to_string(r.signal_seconds));
  if (r.kind == JobKind::train && limit && *limit > 0 && r.signal_seconds >= *limit)
    bad("--signal-seconds (" + std::to_string(r.signal_seconds) + ") must be shorter than --time (" + r.time +
        " = " + std::to_string(*limit) + " s), or the warning would come at the start");
  if (!r.partition.empty() && !is_plain_name(r.partition, true)) bad("--partition: not a partition name: '" + r.partition + "'");
  if (!r.account.empty() && !is_plain_name(r.account, false)) bad("--account: not an account name: '" + r.account + "'");
  if (r.job_name.empty()) r.job_name = "starflow-" + kind;
  if (!is_plain_name(r.job_name, false))
    bad("--job-name: use letters, digits and _.+- only (it names the log files), got '" + r.job_name + "'");
  // The output directory appears unquoted in #SBATCH --output, where SLURM also expands '%'.
  static const std::regex safe_path(R"(/[A-Za-z0-9_.+,@:/=-]*)");
  if (!std::regex_match(r.output_dir, safe_path))
    bad("--output: use an absolute path of letters, digits and _.+,@:/=- only, got '" + r.output_dir + "'");
  if (r.binary.empty() || r.binary[0] != '/') bad("--binary must be an absolute path, got '" + r.binary + "'");
  if (r.kind == JobKind::preprocess) {
    if (r.array.empty()) r.array = "0";
    const int64_t highest = highest_array_index(r.array);
    if (r.shard_count == 0) r.shard_count = highest + 1;
    if (r.shard_count <= highest)
      bad("--shards (" + std::to_string(r.shard_count) + ") must exceed the highest array index (" +
          std::to_string(highest) + ")");
  } else {
    if (!r.array.empty()) bad("--array is for preprocess jobs (a " + kind + " job is one job)");
    if (r.shard_count != 0) bad("--shards is for preprocess jobs");
  }
}

std::string render_job_script(const JobRequest& r, std::string_view template_text, const std::string& origin) {
  std::string gpu_map;
  for (int64_t g = 0; g < r.gpus_per_node; ++g) gpu_map += (g ? "," : "") + std::to_string(g);
  // A comment line must stay one line whatever the arguments held.
  std::string command_line = r.command_line;
  for (char& c : command_line)
    if (c == '\n' || c == '\r') c = ' ';
  const std::string log_name = r.kind == JobKind::preprocess ? "%x-%A_%a.out" : "%x-%j.out";
  const TemplateValues values = {
      {"COMMAND_LINE", command_line},
      {"JOB_NAME", r.job_name},
      {"NODES", std::to_string(r.nodes)},
      {"NTASKS_PER_NODE", std::to_string(r.ntasks_per_node)},
      {"NTASKS", std::to_string(r.total_tasks())},
      {"CPUS_PER_TASK", std::to_string(r.cpus_per_task)},
      {"GPUS_PER_NODE", r.gpus_per_node > 0 ? std::to_string(r.gpus_per_node) : ""},
      {"GPU_MAP", gpu_map},
      {"TIME", r.time},
      {"PARTITION", r.partition},
      {"ACCOUNT", r.account},
      {"OUTPUT", r.output_dir + "/" + log_name},
      {"SIGNAL_SECONDS", std::to_string(r.signal_seconds)},
      {"ARRAY", r.array},
      {"SHARD_COUNT", std::to_string(r.shard_count)},
      {"STARFLOW", shell_quote(r.binary)},
      {"INPUT", shell_quote(r.input)},
      {"EXTRA_ARGS", join_quoted(r.extra_args)},
  };
  return render_template(template_text, values, origin);
}

}  // namespace starflow::slurm
