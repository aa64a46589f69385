// starflow preprocess: images → latent shards, on MPI ranks (mpirun) and SLURM array tasks.
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "jobs/preprocess_job.h"
#include "parallel/error_agreement.h"
#include "tools/mpi_session.h"
#include "tools/options.h"

namespace starflow::tools {

int run_preprocess(int argc, char** argv) {
  jobs::PreprocessOptions o;
  const Option options[] = {
      {"--dataset", "NAME", "fashion-mnist (Debian's dataset-fashion-mnist), emoji (tools/fetch-emoji.sh), captions or labels",
       [&](const std::string& v) { o.dataset = v; }},
      {"--split", "SPLIT", "fashion-mnist split: train (default) or test", [&](const std::string& v) { o.split = v; }},
      {"--images", "DIR", "captions/labels: the image folder", [&](const std::string& v) { o.images_dir = v; }},
      {"--list", "FILE", "captions/labels: the list file (file<TAB>caption or file<TAB>label per line)",
       [&](const std::string& v) { o.list_file = v; }},
      {"--autoencoder", "PATH", "the autoencoder: our .safetensors, an SD-VAE folder or LDM file (default: the bundled one)",
       [&](const std::string& v) { o.autoencoder = v; }},
      {"--out", "DIR", "where the shards go (required)", [&](const std::string& v) { o.out_dir = v; }},
      {"--prefix", "NAME", "shard file prefix (default shard)", [&](const std::string& v) { o.prefix = v; }},
      {"--shard-size", "N", "samples per shard (default 4096)", [&](const std::string& v) { o.shard_size = parse_int(v); }},
      {"--limit", "N", "only the first N samples", [&](const std::string& v) { o.limit = parse_int(v); }},
      {"--text-length", "L", "tokens per caption (default 16; flan-t5-xl's pipeline: 128)",
       [&](const std::string& v) { o.text_length = parse_int(v); }},
      {"--text-encoder", "PATH", "a T5 folder (config.json, spiece.model, safetensors) or a word-vector file "
       "(default: the word vectors in the npm cache)", [&](const std::string& v) { o.text_encoder = v; }},
      {"--image-size", "N", "the training resolution, for an autoencoder of any size (SD-VAE; default: its own)",
       [&](const std::string& v) { o.image_size = parse_int(v); }},
      {"--shard-index", "I", "this array task (default $SLURM_ARRAY_TASK_ID or 0)",
       [&](const std::string& v) { o.shard_index = parse_int(v); }},
      {"--shard-count", "N", "array tasks in all (default $SLURM_ARRAY_TASK_COUNT or 1)",
       [&](const std::string& v) { o.shard_count = parse_int(v); }},
  };
  std::vector<char*> args(argv, argv + argc);
  if (argc >= 2 && argv[1][0] != '-') {  // a config file first; options after it override it
    try {
      o = jobs::preprocess_options_from_file(argv[1]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "starflow preprocess: %s\n", e.what());
      return 2;
    }
    args.erase(args.begin() + 1);
  }
  if (const char* id = std::getenv("SLURM_ARRAY_TASK_ID")) o.shard_index = std::atoll(id);
  if (const char* n = std::getenv("SLURM_ARRAY_TASK_COUNT")) o.shard_count = std::atoll(n);
  const int parsed = parse_options("preprocess",
                                   "Encodes a dataset into HDF5 latent shards (data/FORMAT.md): starflow preprocess "
                                   "[CONFIG.yaml] [options]; the config's keys are the option names.",
                                   options, static_cast<int>(args.size()), args.data());
  if (parsed >= 0) return parsed;
  MpiSession mpi(argc, argv, MPI_THREAD_FUNNELED);
  const int rank = mpi.rank();
  int status = 0;
  const bool tty = isatty(STDOUT_FILENO);
  try {
    const jobs::PreprocessSummary s = jobs::run_preprocess(o, MPI_COMM_WORLD, [&](int64_t done, int64_t total) {
      if (tty) std::printf("\rpreprocess: rank 0 shard %lld/%lld", (long long)done, (long long)total), std::fflush(stdout);
    });
    if (rank == 0)
      std::printf("%spreprocess: %lld shards (%lld written, %lld already complete), %lld samples written, %lld images "
                  "skipped, %.1f s -> %s\n",
                  tty ? "\n" : "", (long long)s.shards_total, (long long)s.shards_written,
                  (long long)s.shards_already_complete, (long long)s.samples_written, (long long)s.images_skipped,
                  s.seconds, o.out_dir.c_str());
  } catch (const std::exception& e) {
    parallel::print_error_once(MPI_COMM_WORLD, e, "starflow preprocess");
    status = 2;
  }
  return status;
}

}  // namespace starflow::tools
