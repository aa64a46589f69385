// Talking to SLURM through its own client commands (sinfo, sbatch, scontrol), exactly as a user would:
// the commands honour SLURM_CONF and the site's configuration, and no SLURM library is linked.
#pragma once
#include <string>
#include <vector>

namespace starflow::slurm {

struct CommandResult {
  int status = 0;  // exit status; 128 + N when killed by signal N; 127 when the program could not be run
  std::string out, err;
};

// Runs argv[0] (found on PATH) with `input` on its stdin; collects stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = "");

// The cluster's partitions as `sinfo` lists them; the default one (marked '*' by sinfo) is reported
// through `default_partition` ("" when there is none). Throws std::runtime_error when sinfo fails.
std::vector<std::string> list_partitions(std::string* default_partition = nullptr);

// Nodes of a partition grouped as sinfo groups them: how many, and the CPUs and GPUs (gres gpu) each has.
struct NodeGroup {
  long long nodes = 0, cpus = 0, gpus = 0;
};
std::vector<NodeGroup> partition_nodes(const std::string& partition);

// Submits a batch script through `sbatch --parsable` (script on stdin) and returns the job id.
// Throws std::runtime_error with sbatch's own one-line reason.
std::string submit_batch_script(const std::string& script);

// `scontrol requeue JOB_ID`: the job goes back to pending and starts again from its script.
void requeue_job(const std::string& job_id);

}  // namespace starflow::slurm
