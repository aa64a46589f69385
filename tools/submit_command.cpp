// starflow submit train|preprocess|sample INPUT [options] [-- job args]: renders the job's sbatch script from
// its template and submits it. Everything that can be checked before queueing is checked first (the input
// through the job's own parser, the layout, the partition), and any problem is one line with nothing queued.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/io/model_weights.h"
#include "jobs/preprocess_job.h"
#include "jobs/train_config.h"
#include "slurm/cluster.h"
#include "slurm/job_script.h"
#include "slurm/script_template.h"
#include "tools/commands.h"
#include "tools/options.h"
#include "tools/train_command.h"

namespace starflow::tools {
namespace {

namespace fs = std::filesystem;

std::string this_binary() {
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (error) throw std::runtime_error("cannot resolve /proc/self/exe: " + error.message() + "; give --binary");
  return exe.string();
}


// The input checked by the job's own parser: what the job would refuse at its first line is refused now.
void check_input(const slurm::JobRequest& r, bool dry_run) {
  switch (r.kind) {
    case slurm::JobKind::train:
      // A dry run may be rendered where the cluster's file systems are not mounted: the shards are
      // opened on submission only.
      check_train_job(jobs::TrainConfig::from_file(r.input), r.input, r.total_tasks(), !dry_run);
      return;
    case slurm::JobKind::sample: {
      const core::io::SafeTensorsFile weights = core::io::SafeTensorsFile::open(r.input);
      core::io::read_config(weights);
      return;
    }
    case slurm::JobKind::preprocess:
      jobs::preprocess_options_from_file(r.input);  // refuses a bad config before anything is queued
      return;
  }
}

void check_partition(slurm::JobRequest& r) {
  std::string default_partition;
  const std::vector<std::string> partitions = slurm::list_partitions(&default_partition);
  std::string known;
  for (const std::string& p : partitions) known += (known.empty() ? "" : ", ") + p;
  if (r.partition.empty() && default_partition.empty())
    throw std::runtime_error("no --partition given and the cluster has no default partition (it has: " + known + ")");
  // A comma-separated list lets SLURM pick the first partition that can start the job.
  std::stringstream list(r.partition.empty() ? default_partition : r.partition);
  std::string name;
  std::string too_small;
  while (std::getline(list, name, ',')) {
    if (std::find(partitions.begin(), partitions.end(), name) == partitions.end())
      throw std::runtime_error("unknown partition '" + name + "' (this cluster has: " + known + ")");
    // Without EnforcePartLimits, sbatch queues a job no node set can ever run; it would wait for ever.
    long long fitting = 0, cpus = 0, gpus = 0;
    for (const slurm::NodeGroup& g : slurm::partition_nodes(name)) {
      cpus = std::max(cpus, g.cpus);
      gpus = std::max(gpus, g.gpus);
      if (g.cpus >= r.ntasks_per_node * r.cpus_per_task && g.gpus >= r.gpus_per_node) fitting += g.nodes;
    }
    if (fitting >= r.nodes) return;
    too_small = "partition '" + name + "' cannot run this job: it needs " + std::to_string(r.nodes) +
                " node(s) with " + std::to_string(r.ntasks_per_node * r.cpus_per_task) +
                " CPUs (ntasks-per-node × cpus-per-task) and " + std::to_string(r.gpus_per_node) +
                " GPUs each, the partition has " + std::to_string(fitting) + " (its largest: " + std::to_string(cpus) +
                " CPUs, " + std::to_string(gpus) + " GPUs)";
  }
  throw std::runtime_error(too_small);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the template");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

int run_submit(int argc, char** argv) {
  slurm::JobRequest r;
  std::string template_path;
  bool dry_run = false;
  auto count = [](int64_t& dst) { return [&dst](const std::string& v) { dst = parse_int(v); }; };
  auto text = [](std::string& dst) { return [&dst](const std::string& v) { dst = v; }; };
  const Option options[] = {
      {"--nodes", "N", "nodes (default 1)", count(r.nodes)},
      {"--ntasks-per-node", "K", "MPI ranks per node (default: one per GPU, else 1)", count(r.ntasks_per_node)},
      {"--gpus-per-node", "G", "GPUs per node; each rank is bound to one (default 0)", count(r.gpus_per_node)},
      {"--cpus-per-task", "C", "CPU cores per rank, its OpenMP threads (default 1)", count(r.cpus_per_task)},
      {"--time", "T", "time limit (minutes, HH:MM:SS, D-HH:MM, ...; default: the partition's)", text(r.time)},
      {"--partition", "P", "partition(s) (default: the cluster's default)", text(r.partition)},
      {"--account", "A", "account to charge", text(r.account)},
      {"--job-name", "NAME", "job name (default starflow-KIND); logs are NAME-JOBID.out", text(r.job_name)},
      {"--output", "DIR", "directory for the job logs (default ./slurm-logs; created on submission)", text(r.output_dir)},
      {"--signal-seconds", "S", "train: warn (USR1) this long before the time limit to checkpoint and requeue (default 300)",
       count(r.signal_seconds)},
      {"--array", "SPEC", "preprocess: array task indices, one shard set each (0-7, 1,4, 0-63%8; default 0)", text(r.array)},
      {"--shards", "N", "preprocess: shard sets in all (default: highest array index + 1)", count(r.shard_count)},
      {"--binary", "PATH", "the starflow binary as the compute nodes see it (default: this one)", text(r.binary)},
      {"--template", "FILE", "render this template instead of the built-in one (see slurm/templates/)",
       text(template_path)},
      {"--dry-run", nullptr, "print the script instead of submitting it (contacts no cluster, opens no shards)",
       [&](const std::string&) { dry_run = true; }},
  };
  const char* synopsis =
      "Renders a SLURM batch script for a starflow job and submits it (prints the job id):\n"
      "  starflow submit train CONFIG.yaml [options] [-- train args]\n"
      "  starflow submit preprocess CONFIG [options] [-- preprocess args]\n"
      "  starflow submit sample WEIGHTS.safetensors [options] [-- sample args]";

  // Positional KIND and INPUT first, the job's own arguments after "--".
  std::vector<char*> args = {argv[0]};
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      r.extra_args.assign(argv + i + 1, argv + argc);
      break;
    }
    if (a.empty() || a[0] != '-') {
      positional.push_back(a);
      continue;
    }
    args.push_back(argv[i]);
    for (const Option& o : options)  // an option's value is never positional, even when it looks like one
      if (a == o.name && o.value_name && i + 1 < argc) args.push_back(argv[++i]);
  }
  const int parsed = parse_options("submit", synopsis, options, static_cast<int>(args.size()), args.data());
  if (parsed >= 0) return parsed;

  // The command that submits this script (so without --dry-run), for the script's header.
  std::string command_line = "starflow";
  for (int i = 0, job_args = 0; i < argc; ++i) {
    job_args |= std::string(argv[i]) == "--";
    if (job_args || std::string(argv[i]) != "--dry-run") command_line += " " + slurm::shell_quote(argv[i]);
  }
  try {
    if (positional.size() != 2)
      throw std::runtime_error("expected KIND and INPUT (starflow submit train|preprocess|sample INPUT ...)");
    const auto kind = slurm::parse_job_kind(positional[0]);
    if (!kind) throw std::runtime_error("unknown job kind '" + positional[0] + "' (train, preprocess or sample)");
    r.kind = *kind;
    if (!fs::exists(positional[1])) throw std::runtime_error(positional[1] + ": no such file");
    r.input = fs::absolute(positional[1]).lexically_normal().string();
    r.output_dir = fs::absolute(r.output_dir.empty() ? "slurm-logs" : r.output_dir).lexically_normal().string();
    if (r.output_dir.size() > 1 && r.output_dir.back() == '/') r.output_dir.pop_back();
    if (r.binary.empty()) r.binary = this_binary();
    r.command_line = command_line;
    slurm::complete_and_check(r);
    check_input(r, dry_run);
    const std::string script =
        template_path.empty()
            ? slurm::render_job_script(r, slurm::builtin_template(r.kind),
                                       std::string("slurm/templates/") + slurm::job_kind_name(r.kind) + ".sbatch")
            : slurm::render_job_script(r, read_file(template_path), template_path);
    if (dry_run) {
      std::fputs(script.c_str(), stdout);
      return 0;
    }
    check_partition(r);
    fs::create_directories(r.output_dir);
    const std::string job_id = slurm::submit_batch_script(script);
    std::printf("%s\n", job_id.c_str());
    std::fprintf(stderr, "starflow submit: %s job %s submitted (%lld task(s)); log %s/%s-%s%s.out\n",
                 slurm::job_kind_name(r.kind), job_id.c_str(), (long long)r.total_tasks(), r.output_dir.c_str(),
                 r.job_name.c_str(), job_id.c_str(), r.kind == slurm::JobKind::preprocess ? "_<task>" : "");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow submit: %s; nothing submitted\n", e.what());
    return 2;
  }
}

}  // namespace starflow::tools
