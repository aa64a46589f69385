// starflow train-ae: trains the project's convolutional autoencoder on Fashion-MNIST or the emoji set and
// reports its held-out reconstruction error; the result is what `starflow preprocess --autoencoder` takes.
#include <unistd.h>

#include <cstdio>

#include "core/io/autoencoder_weights.h"
#include "data/io/emoji_dataset.h"
#include "data/io/idx_reader.h"
#include "data/io/image_folder.h"
#include "jobs/autoencoder_training.h"
#include "tools/options.h"

namespace starflow::tools {
namespace {

// Fashion-MNIST 28×28 in [0, 255] → [N, 1, size, size] in [−1, 1], padded with background.
std::vector<float> fashion_images(data::FashionMnistSplit split, int64_t size, int64_t limit) {
  const data::LabeledImages set = data::read_fashion_mnist(split);
  const int64_t n = limit > 0 ? std::min<int64_t>(limit, set.images.shape[0]) : set.images.shape[0];
  const int64_t pad = (size - 28) / 2;
  std::vector<float> out(n * size * size, -1.f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < 28; ++y)
      for (int64_t x = 0; x < 28; ++x)
        out[(i * size + y + pad) * size + x + pad] = set.images.data[(i * 28 + y) * 28 + x] / 127.5f - 1.f;
  return out;
}

}  // namespace

int run_train_ae(int argc, char** argv) {
  std::string dataset = "fashion-mnist", out;
  jobs::AutoencoderTrainingOptions o;
  int64_t heldout = 2000, limit = 0;
  const Option options[] = {
      {"--dataset", "NAME", "fashion-mnist (default) or emoji", [&](const std::string& v) { dataset = v; }},
      {"--out", "FILE", "where to write the weights (.safetensors, F16)", [&](const std::string& v) { out = v; }},
      {"--steps", "N", "optimiser steps (default 3000)", [&](const std::string& v) { o.steps = parse_int(v); }},
      {"--batch", "N", "images per step (default 32)", [&](const std::string& v) { o.batch = parse_int(v); }},
      {"--lr", "X", "peak learning rate", [&](const std::string& v) { o.lr = parse_double(v); }},
      {"--seed", "S", "initialisation and batch order", [&](const std::string& v) { o.seed = parse_int(v); }},
      {"--heldout", "N", "held-out images for the reconstruction report (default 2000)",
       [&](const std::string& v) { heldout = parse_int(v); }},
      {"--limit", "N", "train on the first N images only", [&](const std::string& v) { limit = parse_int(v); }},
  };
  const int parsed = parse_options("train-ae", "Trains the convolutional autoencoder (images ↔ 4×8×8 latents).",
                                   options, argc, argv);
  if (parsed >= 0) return parsed;
  if (out.empty()) {
    std::fprintf(stderr, "starflow train-ae: --out FILE is required\n");
    return 2;
  }
  try {
    std::vector<float> train, test;
    o.model.image_size = 32;
    if (dataset == "fashion-mnist") {
      o.model.image_channels = 1;
      train = fashion_images(data::FashionMnistSplit::kTrain, 32, limit);
      test = fashion_images(data::FashionMnistSplit::kTest, 32, heldout);
    } else if (dataset == "emoji") {
      o.model.image_channels = 3;
      const data::ImageFolder folder = data::open_emoji_dataset();
      data::SkippedImages skipped([](const data::SkippedImage& s) {
        std::fprintf(stderr, "train-ae: skipped %s: %s\n", s.file.c_str(), s.reason.c_str());
      });
      data::ImageLoadOptions lo{data::ColorMode::kRgb, data::SizePolicy::kResize, 32, 32};
      data::LoadedImages all = folder.load_range(0, folder.size(), lo, skipped);
      for (float& v : all.images.data) v = 2.f * v - 1.f;
      // Every 10th image is held out.
      const int64_t per = 3 * 32 * 32, n = static_cast<int64_t>(all.entries.size());
      for (int64_t i = 0; i < n; ++i)
        (i % 10 == 9 ? test : train).insert((i % 10 == 9 ? test : train).end(), all.images.data.begin() + i * per,
                                            all.images.data.begin() + (i + 1) * per);
    } else {
      throw std::runtime_error("unknown dataset '" + dataset + "' (fashion-mnist or emoji)");
    }
    const bool tty = isatty(STDOUT_FILENO);
    const jobs::AutoencoderTrainingResult r =
        jobs::train_autoencoder(train, test, o, [&](const jobs::AutoencoderTrainingProgress& p) {
          std::printf("%sstep %lld/%lld  loss %.5f  lr %.2e  %.0f img/s  ETA %.0fs%s", tty ? "\r" : "",
                      (long long)p.step, (long long)p.steps, p.loss, p.lr, p.images_per_second, p.eta_seconds,
                      tty ? "" : "\n");
          std::fflush(stdout);
        });
    char psnr[64];
    std::snprintf(psnr, sizeof psnr, "%.3f", r.heldout.psnr);
    core::io::save_autoencoder(r.model, out, "F16",
                               {{"dataset", dataset}, {"heldout_psnr_db", psnr}, {"steps", std::to_string(o.steps)}});
    std::printf("%strained in %.0f s; held-out reconstruction: MSE %.5f (pixels in [-1, 1]), PSNR %.2f dB; latent "
                "scaling %.4f, shift %.4f -> %s\n",
                tty ? "\n" : "", r.seconds, r.heldout.mse, r.heldout.psnr, r.model.config().scaling_factor,
                r.model.config().shift_factor, out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow train-ae: %s\n", e.what());
    return 2;
  }
}

}  // namespace starflow::tools
