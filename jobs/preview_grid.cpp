// PreviewGrid: the conditions and noise are fixed at construction; write() builds a model from the given
// weights (the trainer's own model keeps its state), samples, denoises, decodes and writes the PNG.
#include "jobs/preview_grid.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "core/models/sampler.h"
#include "core/random.h"
#include "data/io/png_io.h"

namespace starflow::jobs {
namespace {

std::unique_ptr<core::LatentCodec> checked_autoencoder(const TrainConfig& c) {
  try {
    return load_autoencoder_for(c.model, c.autoencoder);
  } catch (const std::exception& e) {
    throw std::runtime_error("key 'autoencoder': " + std::string(e.what()));
  }
}

}  // namespace

PreviewGrid::PreviewGrid(const TrainConfig& c)
    : model_(c.model),
      split_shallow_(c.tp_shallow),
      autoencoder_(checked_autoencoder(c)),
      guidance_(c.cfg),
      noise_std_(c.noise_std),
      dir_((std::filesystem::path(c.output_dir) / "samples").string()) {
  std::vector<int64_t> labels;
  std::vector<std::string> captions;
  if (!model_.conditional()) {
    rows_ = kUnconditionalRows;
  } else if (is_class_conditional(model_)) {
    rows_ = std::min(model_.txt_dim - 1, kMaxRows);
    for (int64_t b = 0; b < rows_ * kColumns; ++b) labels.push_back(b / kColumns);
    condition_ = class_conditioning(model_, labels);
  } else {
    const std::vector<std::string> wanted = c.preview_captions.empty() ? std::vector<std::string>{""} : c.preview_captions;
    rows_ = static_cast<int64_t>(wanted.size());
    for (int64_t b = 0; b < rows_ * kColumns; ++b) captions.push_back(wanted[b / kColumns]);
    try {
      const std::unique_ptr<core::TextEncoder> encoder = text_encoder_for(model_, c.text_encoder);
      condition_ = caption_conditioning(model_, *encoder, captions);
    } catch (const std::exception& e) {
      throw std::runtime_error("key 'preview_captions': " + std::string(e.what()));
    }
  }
  const int64_t B = rows_ * kColumns;
  noise_.resize(B * model_.in_channels * model_.img_size * model_.img_size);
  core::Rng rng(c.seed ^ 0x5052455649455721ull);  // its own stream: the training draws are untouched
  for (float& v : noise_) v = float(rng.normal());
}

std::string PreviewGrid::path_for(int64_t step) const {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld.png", static_cast<long long>(step));
  return (std::filesystem::path(dir_) / name).string();
}

std::string PreviewGrid::write(int64_t step, std::span<const float> parameters, core::Communicator* tp) {
  try {
    return write_grid(step, parameters, tp);
  } catch (const std::exception& e) {
    // A preview is a look at the run, not part of it: the other ranks are already in the next step.
    std::fprintf(stderr, "preview: step %lld: %s (training continues)\n", static_cast<long long>(step), e.what());
    return "";
  }
}

std::string PreviewGrid::write_grid(int64_t step, std::span<const float> parameters, core::Communicator* tp) {
  const auto t0 = std::chrono::steady_clock::now();
  core::StarFlowModel<float> model(model_, tp, split_shallow_);
  if (parameters.size() != model.parameters().size())
    throw std::runtime_error("preview: " + std::to_string(parameters.size()) + " weights given, the model has " +
                             std::to_string(model.parameters().size()));
  std::copy(parameters.begin(), parameters.end(), model.parameters().begin());
  const int64_t B = rows_ * kColumns;
  const float* y = model_.conditional() ? condition_.y.data() : nullptr;
  core::SampleOptions options;
  options.guidance = guidance_;
  const bool guided = model_.conditional() && guidance_ > 0;
  std::vector<float> latents = core::sample(model, noise_.data(), y, guided ? condition_.y_null.data() : nullptr, B, options);
  latents = core::denoise(model, latents.data(), y, B, noise_std_);
  if (tp && tp->rank() != 0) return "";  // every TP rank holds the same samples; one writes them
  const std::vector<float> images = decode_latents(*autoencoder_, latents, B);
  const core::LatentCodec& ae = *autoencoder_;
  std::filesystem::create_directories(dir_);
  const std::string path = path_for(step);
  const int64_t bad =
      data::write_image_grid(path, images, {B, ae.image_channels(), ae.image_size(), ae.image_size()}, rows_, kColumns);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string warning = bad ? "  WARNING: " + std::to_string(bad) + " non-finite values, drawn black" : "";
  std::printf("%spreview: %s (%lld samples, %.1f s)%s\n", isatty(STDOUT_FILENO) && !std::getenv("OMPI_COMM_WORLD_SIZE") ? "\n" : "", path.c_str(),
              static_cast<long long>(B), seconds, warning.c_str());
  std::fflush(stdout);
  return path;
}

}  // namespace starflow::jobs
