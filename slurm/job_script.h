// What `starflow submit` asks of SLURM, checked and completed with defaults, and the sbatch script rendered
// from it. Pure logic (no cluster contact), so every rule here is unit-tested.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace starflow::slurm {

enum class JobKind { train, preprocess, sample };
std::optional<JobKind> parse_job_kind(const std::string& name);
const char* job_kind_name(JobKind kind);

struct JobRequest {
  JobKind kind = JobKind::train;
  std::string input;             // absolute path: the config (train, preprocess) or the weights (sample)
  int64_t nodes = 1;
  int64_t ntasks_per_node = 0;   // 0: one per GPU when gpus_per_node > 0, else 1
  int64_t gpus_per_node = 0;
  int64_t cpus_per_task = 1;
  std::string time;              // SLURM time limit; "": the partition's default
  std::string partition, account;
  std::string job_name;          // "": starflow-<kind>
  std::string output_dir;        // absolute; logs go to <dir>/<job name>-<job id>.out
  int64_t signal_seconds = 300;  // train: warning this long before the time limit
  std::string array;             // preprocess: array indices ("0-7", "1,4", "0-15%4"); "": "0"
  int64_t shard_count = 0;       // preprocess: shards in all; 0: the highest array index + 1
  std::string binary;            // absolute path of starflow as the compute nodes see it
  std::vector<std::string> extra_args;  // appended to the job's starflow command
  std::string command_line;      // the submit command, recorded in the script's header

  int64_t total_tasks() const { return nodes * ntasks_per_node; }
};

// Checks every field and fills the defaults. Throws std::invalid_argument with one line naming the option
// at fault ("--nodes must be >= 1, got 0").
void complete_and_check(JobRequest& request);

// The highest index of a SLURM array spec ("0-9:3,12%2" → 12); throws std::invalid_argument when the spec
// is malformed.
int64_t highest_array_index(const std::string& spec);
// Whether text is a SLURM time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, UNLIMITED).
bool is_time_limit(const std::string& text);

// The template compiled into the binary for this kind (the files in slurm/templates/).
std::string_view builtin_template(JobKind kind);
// Renders the job script from a completed request; `origin` names the template in errors.
std::string render_job_script(const JobRequest& request, std::string_view template_text, const std::string& origin);

}  // namespace starflow::slurm
