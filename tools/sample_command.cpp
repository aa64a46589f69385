// starflow sample: the sampling job from the command line.
#include <cstdio>
#include <sstream>

#include "jobs/sample_job.h"
#ifdef STARFLOW_HAVE_CUDA_TRAINING
#include "jobs/cuda/cuda_sampling.h"
#endif
#include "parallel/process_grid.h"
#include "tools/commands.h"
#include "tools/cpu_threads.h"
#include "tools/mpi_session.h"
#include "tools/options.h"
#include "tools/train_command.h"

namespace starflow::tools {

namespace {

void report(const jobs::SampleJobResult& r, const jobs::SampleJobOptions& o) {
  std::printf("sampled %lld latents of shape [%lld, %lld, %lld] in %.2f s%s%s%s%s\n", (long long)r.shape[0],
              (long long)r.shape[1], (long long)r.shape[2], (long long)r.shape[3], r.seconds,
              o.output.empty() ? "" : " -> ", o.output.c_str(), o.grid.empty() ? "" : ", grid -> ", o.grid.c_str());
}

// --tp N under mpirun -np N: every rank samples with its shard of the deep block; rank 0 writes.
int run_tensor_parallel(jobs::SampleJobOptions o, int tp, int threads, int argc, char** argv) {
  MpiSession mpi(argc, argv);
  try {
    parallel::ProcessGrid grid(MPI_COMM_WORLD, tp, 1);
    set_cpu_threads(threads_per_rank(threads));
    o.tp = &grid.tp();
    const jobs::SampleJobResult r = jobs::run_sample_job(o);
    if (mpi.rank() == 0) report(r, o);
    return 0;
  } catch (const std::exception& e) {
    // Validation fails alike on every rank: say it once.
    if (mpi.rank() == 0) std::fprintf(stderr, "starflow sample: %s\n", e.what());
    return 2;
  }
}

}  // namespace

int run_sample(int argc, char** argv) {
  jobs::SampleJobOptions o;
  int threads = 0, tp = 1;
  std::string device = "cpu", precision;
  const Option options[] = {
      {"--weights", "FILE", "safetensors weights under the official names, with `config` metadata (required)",
       [&](const std::string& v) { o.weights = v; }},
      {"--out", "FILE", "write the latents [B, C, H, W]: FILE.safetensors, or FILE.h5 (a latent shard)",
       [&](const std::string& v) { o.output = v; }},
      {"--autoencoder", "FILE", "the autoencoder of the training latents (decodes the grid)",
       [&](const std::string& v) { o.autoencoder = v; }},
      {"--grid", "FILE.png", "write a PNG grid of the decoded samples (needs --autoencoder)",
       [&](const std::string& v) { o.grid = v; }},
      {"--grid-columns", "N", "images per grid row (default ⌈√batch⌉)", [&](const std::string& v) { o.grid_columns = parse_int(v); }},
      {"--class", "K[,K...]", "class id(s), repeated over the batch (class-conditional models)",
       [&](const std::string& v) {
         std::stringstream ss(v);
         std::string item;
         while (std::getline(ss, item, ',')) o.classes.push_back(parse_int(item));
       }},
      {"--caption", "TEXT", "text condition, repeatable; repeated over the batch (text-conditioned models)",
       [&](const std::string& v) { o.captions.push_back(v); }},
      {"--text-encoder", "PATH", "a T5 folder (config.json, spiece.model, safetensors) or a word-vector file "
       "(default: the word vectors in the npm cache of tools/fetch-emoji.sh)",
       [&](const std::string& v) { o.text_encoder = v; }},
      {"--word-vectors", "FILE", "the same as --text-encoder FILE", [&](const std::string& v) { o.text_encoder = v; }},
      {"--cfg", "W", "guidance weight w >= 0 (STARFlow guidance in the conditioned block; default 0)",
       [&](const std::string& v) { o.cfg = parse_double(v); }},
      {"--jacobi", nullptr, "Jacobi (parallel fixed-point) decoding instead of sequential",
       [&](const std::string&) { o.jacobi = true; }},
      {"--jacobi-block", "N", "Jacobi chunk size (default 16)",
       [&](const std::string& v) { o.jacobi_block_size = parse_int(v); }},
      {"--jacobi-iters", "N", "Jacobi iterations per chunk at most (default 32)",
       [&](const std::string& v) { o.jacobi_max_iter = parse_int(v); }},
      {"--jacobi-th", "X", "Jacobi stop threshold on the relative squared change (default 1e-3)",
       [&](const std::string& v) { o.jacobi_threshold = parse_double(v); }},
      {"--attn-temp", "T", "attention temperature: every attention logit divided by T in sequential decoding (default 1)",
       [&](const std::string& v) { o.attention_temperature = parse_double(v); }},
      {"--seed", "S", "noise seed: the same seed gives the same samples (default 0)",
       [&](const std::string& v) { o.seed = static_cast<uint64_t>(parse_int(v)); }},
      {"--batch", "N", "number of samples (default 16)", [&](const std::string& v) { o.batch = parse_int(v); }},
      {"--denoise", nullptr,
       "apply one denoising step: the model's learnable self-denoiser when it has one, else the score-based x + "
       "σ²·∇log p(x|y)",
       [&](const std::string&) { o.denoise = true; }},
      {"--noise-std", "S", "σ of the denoising step (the training noise level; default 0.3)",
       [&](const std::string& v) { o.noise_std = parse_double(v); }},
      {"--tp", "N", "tensor-parallel ranks (run under mpirun -np N): the deep block and its KV cache split by heads",
       [&](const std::string& v) { tp = static_cast<int>(parse_int(v)); }},
      {"--threads", "N", "CPU threads (default: all cores; under --tp, the cores divided among the ranks)",
       [&](const std::string& v) { threads = static_cast<int>(parse_int(v)); }},
      {"--device", "cpu|cuda", "where the model samples (cuda: one GPU; default cpu)",
       [&](const std::string& v) { device = v; }},
      {"--precision", "fp32|bf16", "the model's precision on --device cuda (default bf16; the CPU samples in fp32)",
       [&](const std::string& v) { precision = v; }},
  };
  const int parsed = parse_options("sample", "Samples latents from a STARFlow model.", options, argc, argv);
  if (parsed >= 0) return parsed;
  if (device != "cpu" && device != "cuda") {
    std::fprintf(stderr, "starflow sample: --device: expected cpu or cuda, got '%s'\n", device.c_str());
    return 2;
  }
  if (device == "cpu" && !precision.empty() && precision != "fp32") {
    std::fprintf(stderr, "starflow sample: --precision %s is for --device cuda (the CPU samples in fp32)\n",
                 precision.c_str());
    return 2;
  }
  if (device == "cuda") {
#ifdef STARFLOW_HAVE_CUDA_TRAINING
    try {
      o.sampler = jobs::cuda_sampler(precision.empty() ? "bf16" : precision);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "starflow sample: %s\n", e.what());
      return 2;
    }
#else
    std::fprintf(stderr, "starflow sample: --device cuda: this starflow was built without the CUDA backend\n");
    return 2;
#endif
  }
  if (tp > 1) return run_tensor_parallel(o, tp, threads, argc, argv);
  if (const auto launch = launched_ranks(); launch.size > 1) {
    if (launch.rank == 0)
      std::fprintf(stderr, "starflow sample: launched as %d ranks without --tp: each would write the same samples; "
                   "give --tp %d (the deep block split over the ranks) or run one process\n", launch.size,
                   launch.size);
    return 2;
  }
  set_cpu_threads(threads);
  try {
    report(jobs::run_sample_job(o), o);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow sample: %s\n", e.what());
    return 2;
  }
}

}  // namespace starflow::tools
