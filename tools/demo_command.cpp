// starflow demo: the one-command tour (jobs/demo_job.h).
#include <unistd.h>

#include <climits>
#include <cstdio>

#include "jobs/demo_job.h"
#include "tools/options.h"

namespace starflow::tools {

int run_demo(int argc, char** argv) {
  jobs::DemoOptions o;
  const Option options[] = {
      {"--dataset", "NAME", "fashion-mnist (default; class-conditional) or emoji (text-conditional, tools/fetch-emoji.sh)",
       [&](const std::string& v) { o.dataset = v; }},
      {"--out", "DIR", "output folder (default out/demo, out/demo-emoji)", [&](const std::string& v) { o.out_dir = v; }},
      {"--steps", "N", "training steps (default 900 fashion-mnist, 1500 emoji)",
       [&](const std::string& v) { o.steps = parse_int(v); }},
      {"--ranks", "N", "MPI ranks for preprocessing and training (default 2)",
       [&](const std::string& v) { o.ranks = int(parse_int(v)); }},
      {"--cfg", "W", "guidance of the sample grid (default 2 fashion-mnist, 3 emoji)",
       [&](const std::string& v) { o.cfg = parse_double(v); }},
      {"--caption", "TEXT", "emoji: a grid row for this caption (repeatable; default red heart, blue heart, ...)",
       [&](const std::string& v) { o.captions.push_back(v); }},
      {"--limit", "N", "emoji: train on the first N captioned images only (default all)",
       [&](const std::string& v) { o.limit = parse_int(v); }},
      {"--eval", "N", "fashion-mnist: held-out images for NLL and classification (default 1000)",
       [&](const std::string& v) { o.eval_samples = parse_int(v); }},
  };
  const int parsed = parse_options("demo", "Preprocess, train on 2 MPI ranks, sample and evaluate, in one command.",
                                   options, argc, argv);
  if (parsed >= 0) return parsed;
  if (o.ranks < 1 || o.limit < 0) {
    std::fprintf(stderr, "starflow demo: --ranks must be >= 1 and --limit >= 0\n");
    return 2;
  }
  char self[PATH_MAX] = {0};
  if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0) {
    std::fprintf(stderr, "starflow demo: cannot find this executable's path\n");
    return 2;
  }
  o.binary = self;
  try {
    return jobs::run_demo(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow demo: %s\n", e.what());
    return 2;
  }
}

}  // namespace starflow::tools
