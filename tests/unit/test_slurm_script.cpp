// The SLURM submission logic without a cluster: the template language, request checks and defaults, the
// rendered scripts' essentials and the child-process runner (the preemption flag: test_preemption.cpp).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "slurm/cluster.h"
#include "slurm/job_script.h"
#include "slurm/script_template.h"

using namespace starflow::slurm;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The message of the exception `f` throws, or "" when it throws none.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

JobRequest train_request() {
  JobRequest r;
  r.kind = JobKind::train;
  r.input = "/data/configs/run one.yaml";
  r.output_dir = "/scratch/logs";
  r.binary = "/opt/starflow/bin/starflow";
  r.command_line = "starflow submit train 'run one.yaml'";
  return r;
}

}  // namespace

TEST(SlurmTemplate, SubstitutesValuesAndKeepsSections) {
  const TemplateValues v = {{"A", "1"}, {"B", ""}, {"C", "x y"}};
  EXPECT_EQ(render_template("a={{A}} c={{C}}\n", v, "t"), "a=1 c=x y\n");
  EXPECT_EQ(render_template("{{#A}}\nhas A\n{{/A}}\n{{#B}}\nhas B\n{{/B}}\nend", v, "t"), "has A\nend");
  EXPECT_EQ(render_template("{{^B}}\nno B\n{{/B}}\n{{^A}}\nno A\n{{/A}}\n", v, "t"), "no B\n");
  // A kept section inside a dropped one stays dropped.
  EXPECT_EQ(render_template("  {{#B}}\n{{#A}}\ninner\n{{/A}}\n{{/B}}\nout\n", v, "t"), "out\n");
}

TEST(SlurmTemplate, RejectsMistakesWithTheLine) {
  const TemplateValues v = {{"A", "1"}};
  EXPECT_EQ(error_of([&] { render_template("ok\nx={{TYPO}}\n", v, "t.sbatch"); }),
            "t.sbatch:2: unknown template value '{{TYPO}}'");
  EXPECT_EQ(error_of([&] { render_template("{{#A}}\nx\n", v, "t"); }), "t:1: section '{{#A}}' is never closed");
  EXPECT_EQ(error_of([&] { render_template("{{/A}}\n", v, "t"); }), "t:1: '{{/A}}' closes no open section");
  EXPECT_EQ(error_of([&] { render_template("a {{A\n", v, "t"); }), "t:1: '{{' without '}}'");
}

TEST(SlurmTemplate, ShellQuoting) {
  EXPECT_EQ(shell_quote("/opt/x-1.2/starflow"), "/opt/x-1.2/starflow");
  EXPECT_EQ(shell_quote("run one.yaml"), "'run one.yaml'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("a=b"), "'a=b'");
  EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
}

TEST(SlurmRequest, ArraySpecsAndTimeLimits) {
  EXPECT_EQ(highest_array_index("0"), 0);
  EXPECT_EQ(highest_array_index("0-2"), 2);
  EXPECT_EQ(highest_array_index("0-10:3"), 9);
  EXPECT_EQ(highest_array_index("1,4,9-11"), 11);
  EXPECT_EQ(highest_array_index("0-63%8"), 63);
  for (const char* bad : {"", "a", "3-1", "0-4:0", "1,,2", "0-2%", "-1"})
    EXPECT_THROW(highest_array_index(bad), std::invalid_argument) << bad;
  for (const char* good : {"30", "30:00", "12:00:00", "2-0", "2-12:30", "1-00:00:00", "UNLIMITED"})
    EXPECT_TRUE(is_time_limit(good)) << good;
  for (const char* bad : {"", "1h", "1:2:3:4", "2-", "-5", "1-2-3"}) EXPECT_FALSE(is_time_limit(bad)) << bad;
}

TEST(SlurmRequest, DefaultsFollowTheLayout) {
  JobRequest r = train_request();
  r.gpus_per_node = 8;
  complete_and_check(r);
  EXPECT_EQ(r.ntasks_per_node, 8);  // one rank per GPU
  EXPECT_EQ(r.job_name, "starflow-train");
  JobRequest p = train_request();
  p.kind = JobKind::preprocess;
  p.array = "0-2";
  complete_and_check(p);
  EXPECT_EQ(p.shard_count, 3);
  JobRequest q = train_request();
  q.kind = JobKind::preprocess;
  complete_and_check(q);
  EXPECT_EQ(q.array, "0");
  EXPECT_EQ(q.shard_count, 1);
}

TEST(SlurmRequest, BadRequestsGetOneLineNamingTheOption) {
  auto check = [](auto edit) {
    JobRequest r = train_request();
    edit(r);
    return error_of([&] { complete_and_check(r); });
  };
  EXPECT_EQ(check([](JobRequest& r) { r.nodes = 0; }), "--nodes must be >= 1, got 0");
  EXPECT_EQ(check([](JobRequest& r) { r.ntasks_per_node = -2; }), "--ntasks-per-node must be >= 1, got -2");
  EXPECT_EQ(check([](JobRequest& r) { r.cpus_per_task = 0; }), "--cpus-per-task must be >= 1, got 0");
  EXPECT_EQ(check([](JobRequest& r) { r.gpus_per_node = 8, r.ntasks_per_node = 4; }),
            "--ntasks-per-node (4) must equal --gpus-per-node (8): one rank per GPU");
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.time = "1h"; }), "--time: expected minutes"));
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.time = "10", r.signal_seconds = 600; }),
                       "--signal-seconds (600) must be shorter than --time (10 = 600 s)"));
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.job_name = "a b"; }), "--job-name"));
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.partition = "gpu;rm"; }), "--partition"));
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.output_dir = "logs"; }), "--output"));
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.output_dir = "/logs/%j"; }), "--output"));
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.binary = "starflow"; }), "--binary"));
  EXPECT_EQ(check([](JobRequest& r) { r.array = "0-3"; }), "--array is for preprocess jobs (a train job is one job)");
  EXPECT_TRUE(contains(check([](JobRequest& r) { r.kind = JobKind::sample, r.nodes = 2; }), "one process"));
  EXPECT_EQ(check([](JobRequest& r) { r.kind = JobKind::preprocess, r.array = "0-3", r.shard_count = 2; }),
            "--shards (2) must exceed the highest array index (3)");
}

TEST(SlurmScript, TrainOnGpusHasTheEssentials) {
  JobRequest r = train_request();
  r.nodes = 64;
  r.gpus_per_node = 8;
  r.cpus_per_task = 12;
  r.time = "2-00:00:00";
  r.partition = "gpu";
  r.account = "proj1";
  r.extra_args = {"--steps", "1000"};
  complete_and_check(r);
  const std::string s = render_job_script(r, builtin_template(JobKind::train), "train.sbatch");
  for (const char* line : {"#!/bin/bash\n", "#SBATCH --nodes=64\n", "#SBATCH --ntasks-per-node=8\n",
                           "#SBATCH --gpus-per-node=8\n", "#SBATCH --cpus-per-task=12\n",
                           "#SBATCH --time=2-00:00:00\n", "#SBATCH --partition=gpu\n", "#SBATCH --account=proj1\n",
                           "#SBATCH --output=/scratch/logs/%x-%j.out\n", "#SBATCH --signal=B:USR1@300\n",
                           "#SBATCH --requeue\n", "#SBATCH --open-mode=append\n", "trap forward_stop USR1\n",
                           "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n", "(512 data-parallel ranks",
                           "srun --mpi=pmix --kill-on-bad-exit=1 --gpu-bind=map_gpu:0,1,2,3,4,5,6,7 \\\n",
                           "  /opt/starflow/bin/starflow train '/data/configs/run one.yaml' --preempt-requeue --steps 1000 &\n"})
    EXPECT_TRUE(contains(s, line)) << line << "\nnot in:\n" << s;
  EXPECT_FALSE(contains(s, "{{"));
}

TEST(SlurmScript, TrainOnCpusHasNoGpuLines) {
  JobRequest r = train_request();
  r.ntasks_per_node = 2;
  complete_and_check(r);
  const std::string s = render_job_script(r, builtin_template(JobKind::train), "train.sbatch");
  EXPECT_FALSE(contains(s, "gpu")) << s;
  EXPECT_FALSE(contains(s, "#SBATCH --time")) << s;
  EXPECT_FALSE(contains(s, "#SBATCH --partition")) << s;
  EXPECT_TRUE(contains(s, "srun --mpi=pmix --kill-on-bad-exit=1 \\\n  /opt/starflow/bin/starflow train")) << s;
}

TEST(SlurmScript, PreprocessArrayPassesTheShard) {
  JobRequest r = train_request();
  r.kind = JobKind::preprocess;
  r.array = "0-2";
  r.ntasks_per_node = 2;
  complete_and_check(r);
  const std::string s = render_job_script(r, builtin_template(JobKind::preprocess), "preprocess.sbatch");
  EXPECT_TRUE(contains(s, "#SBATCH --array=0-2\n")) << s;
  EXPECT_TRUE(contains(s, "#SBATCH --output=/scratch/logs/%x-%A_%a.out\n")) << s;
  EXPECT_TRUE(contains(s, "preprocess '/data/configs/run one.yaml' --shard-index \"$SLURM_ARRAY_TASK_ID\" "
                          "--shard-count 3\n"))
      << s;
  // Resubmitting one missing task keeps the original division of the input.
  r.array = "1";
  r.shard_count = 3;
  complete_and_check(r);
  EXPECT_TRUE(contains(render_job_script(r, builtin_template(JobKind::preprocess), "p"), "--shard-count 3\n"));
}

TEST(SlurmScript, EveryBuiltinTemplateRenders) {
  for (JobKind kind : {JobKind::train, JobKind::preprocess, JobKind::sample}) {
    JobRequest r = train_request();
    r.kind = kind;
    r.gpus_per_node = kind == JobKind::sample ? 1 : 0;
    complete_and_check(r);
    const std::string s = render_job_script(r, builtin_template(kind), job_kind_name(kind));
    EXPECT_EQ(s.rfind("#!/bin/bash\n", 0), 0u) << job_kind_name(kind);
    EXPECT_FALSE(contains(s, "{{")) << s;
  }
}

TEST(SlurmCluster, RunCommandFeedsAndCollects) {
  const CommandResult r = run_command({"sh", "-c", "cat; echo oops >&2; exit 3"}, "hello\n");
  EXPECT_EQ(r.status, 3);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
  // More than a pipe holds, both ways: no deadlock.
  const std::string big(1 << 20, 'x');
  const CommandResult c = run_command({"sh", "-c", "cat; head -c 200000 /dev/zero >&2"}, big);
  EXPECT_EQ(c.status, 0);
  EXPECT_EQ(c.out, big);
  EXPECT_EQ(c.err.size(), 200000u);
  // A child that ignores its input.
  EXPECT_EQ(run_command({"true"}, big).status, 0);
  EXPECT_EQ(run_command({"starflow-no-such-program"}).status, 127);
}
