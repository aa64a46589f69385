// train_autoencoder: shuffled mini-batches, AdamW on the flat buffers, progress, evaluation, latent
// statistics.
#include "jobs/autoencoder_training.h"

#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/optim/adamw.h"
#include "core/random.h"

namespace starflow::jobs {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("train-ae: " + message);
}

int64_t image_count(std::span<const float> pixels, int64_t per_image, const char* what) {
  require(pixels.size() % per_image == 0, std::string(what) + " hold " + std::to_string(pixels.size()) +
                                              " values, not a whole number of images of " +
                                              std::to_string(per_image));
  return static_cast<int64_t>(pixels.size()) / per_image;
}

// A fresh permutation of 0..n−1 (Fisher–Yates on the project's portable Rng, so the batch order is the
// same on every machine).
void shuffle(std::vector<int64_t>& order, core::Rng& rng) {
  for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

AutoencoderReconstruction evaluate_reconstruction(core::Autoencoder<float>& model, std::span<const float> images,
                                                  int64_t batch) {
  const int64_t per_image = model.config().image_numel();
  const int64_t n = image_count(images, per_image, "held-out images");
  AutoencoderReconstruction r;
  if (n == 0) return r;
  double sq = 0;
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t b = std::min(batch, n - i);
    const core::AutoencoderLoss loss = model.forward(images.data() + i * per_image, b);
    sq += loss.mse * static_cast<double>(b);
  }
  r.mse = sq / static_cast<double>(n);
  r.psnr = 10.0 * std::log10(4.0 / r.mse);
  return r;
}

AutoencoderTrainingResult train_autoencoder(std::span<const float> images, std::span<const float> heldout,
                                            const AutoencoderTrainingOptions& o,
                                            const std::function<void(const AutoencoderTrainingProgress&)>& progress) {
  o.model.validate();
  require(o.steps >= 1, "--steps must be at least 1");
  require(o.batch >= 1, "--batch must be at least 1");
  require(o.lr > 0 && o.min_lr >= 0 && o.min_lr <= o.lr, "learning rates must satisfy 0 <= min_lr <= lr, lr > 0");
  require(o.warmup_steps >= 0, "--warmup-steps must be >= 0");
  const int64_t per_image = o.model.image_numel();
  const int64_t N = image_count(images, per_image, "training images");
  image_count(heldout, per_image, "held-out images");
  require(N >= o.batch, "the batch (" + std::to_string(o.batch) + ") is larger than the training set (" +
                            std::to_string(N) + " images)");

  AutoencoderTrainingResult result{core::Autoencoder<float>(o.model), {}, {}, 0, 0, 0};
  core::Autoencoder<float>& model = result.model;
  model.init_parameters(o.seed);
  core::AdamW<float> optimizer(model.layout().total_size(), core::AdamWConfig{0.9, 0.99, 1e-8, o.weight_decay});
  const core::WarmupCosineSchedule schedule{o.lr, o.min_lr, o.warmup_steps, o.steps};

  // Epochs of a seeded permutation; the tail that does not fill a batch waits for the next epoch.
  core::Rng rng(o.seed ^ 0x5eed0fba7c4e5ull);
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  int64_t cursor = 0;
  std::vector<float> batch(o.batch * per_image);

  const auto start = std::chrono::steady_clock::now();
  double report_sum = 0, last_report_time = 0;
  int64_t report_steps = 0;
  result.train_loss.reserve(o.steps);
  for (int64_t step = 0; step < o.steps; ++step) {
    if (cursor + o.batch > N) {
      shuffle(order, rng);
      cursor = 0;
    }
    for (int64_t b = 0; b < o.batch; ++b) {
      const float* src = images.data() + order[cursor + b] * per_image;
      std::copy(src, src + per_image, batch.begin() + b * per_image);
    }
    cursor += o.batch;

    model.zero_gradients();
    const double loss = model.forward(batch.data(), o.batch, o.loss).total;
    if (!std::isfinite(loss))
      throw std::runtime_error("train-ae: the loss is " + std::to_string(loss) + " at step " + std::to_string(step) +
                               " (lower --lr?)");
    model.backward();
    const double lr = schedule.lr(step);
    optimizer.step(model.parameters(), model.gradients(), lr);
    result.train_loss.push_back(loss);

    report_sum += loss;
    ++report_steps;
    const bool last = step + 1 == o.steps;
    if (progress && ((step + 1) % std::max<int64_t>(1, o.progress_every) == 0 || last)) {
      const double now = seconds_since(start);
      AutoencoderTrainingProgress p;
      p.step = step + 1;
      p.steps = o.steps;
      p.loss = report_sum / static_cast<double>(report_steps);
      p.lr = lr;
      p.images_per_second = static_cast<double>(report_steps * o.batch) / std::max(now - last_report_time, 1e-9);
      p.elapsed_seconds = now;
      p.eta_seconds = now / static_cast<double>(step + 1) * static_cast<double>(o.steps - step - 1);
      progress(p);
      report_sum = 0;
      report_steps = 0;
      last_report_time = now;
    }
  }
  result.seconds = seconds_since(start);

  // Latent statistics over (up to) stats_images training images, in a fixed order; the flow sees
  // (z − mean)/std, which has zero mean and unit std on the training set.
  const int64_t stats_n = std::min(N, std::max<int64_t>(1, o.stats_images));
  const int64_t latent_per_image = o.model.latent_numel(), eval_batch = 64;
  std::vector<float> z(eval_batch * latent_per_image);
  double sum = 0, sum_sq = 0;
  for (int64_t i = 0; i < stats_n; i += eval_batch) {
    const int64_t b = std::min(eval_batch, stats_n - i);
    model.encode(images.data() + i * per_image, b, z.data());
    for (int64_t j = 0; j < b * latent_per_image; ++j) {
      sum += z[j];
      sum_sq += static_cast<double>(z[j]) * z[j];
    }
  }
  const double count = static_cast<double>(stats_n * latent_per_image);
  result.latent_mean = sum / count;
  result.latent_std = std::sqrt(std::max(0.0, sum_sq / count - result.latent_mean * result.latent_mean));
  if (result.latent_std > 0) model.set_latent_normalisation(1.0 / result.latent_std, result.latent_mean);

  result.heldout = evaluate_reconstruction(model, heldout, eval_batch);
  return result;
}

}  // namespace starflow::jobs
