// train_autoencoder (the job behind `starflow train-ae`): it learns, reports progress on schedule, sets
// the latent normalisation from the measured statistics, is deterministic for a seed, and refuses bad
// input before doing any work.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/random.h"
#include "jobs/autoencoder_training.h"

using namespace starflow;

namespace {

// Soft blobs on a −1 background, like small grey-scale photographs of objects.
std::vector<float> blob_images(int64_t N, int64_t S, uint64_t seed) {
  core::Rng rng(seed);
  std::vector<float> images(N * S * S);
  for (int64_t i = 0; i < N; ++i) {
    const double cx = rng.uniform(4, S - 4), cy = rng.uniform(4, S - 4), r = rng.uniform(2, 5);
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        const double d2 = ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (r * r);
        images[(i * S + y) * S + x] = static_cast<float>(2.0 * std::exp(-d2) - 1.0);
      }
  }
  return images;
}

jobs::AutoencoderTrainingOptions small_options() {
  jobs::AutoencoderTrainingOptions o;
  o.model.image_channels = 1;
  o.model.image_size = 16;
  o.model.channels = {8, 16, 16};
  o.model.norm_groups = 4;
  o.model.mid_layers = 0;
  o.steps = 120;
  o.batch = 8;
  o.lr = 3e-3;
  o.warmup_steps = 10;
  o.progress_every = 50;
  o.stats_images = 64;
  return o;
}

TEST(AutoencoderTraining, LearnsReportsAndNormalisesTheLatents) {
  const std::vector<float> train = blob_images(64, 16, 1), heldout = blob_images(16, 16, 2);
  const jobs::AutoencoderTrainingOptions o = small_options();
  std::vector<int64_t> reported;
  jobs::AutoencoderTrainingResult r = jobs::train_autoencoder(
      train, heldout, o, [&](const jobs::AutoencoderTrainingProgress& p) {
        reported.push_back(p.step);
        EXPECT_EQ(p.steps, o.steps);
        EXPECT_TRUE(std::isfinite(p.loss));
        EXPECT_GT(p.images_per_second, 0);
      });
  EXPECT_EQ(reported, (std::vector<int64_t>{50, 100, 120}));
  ASSERT_EQ(static_cast<int64_t>(r.train_loss.size()), o.steps);
  EXPECT_LT(r.train_loss.back(), r.train_loss.front() / 5);
  // Held-out blobs come from the same distribution: the model generalises to them.
  EXPECT_GT(r.heldout.psnr, 20.0);
  EXPECT_NEAR(r.heldout.psnr, 10 * std::log10(4 / r.heldout.mse), 1e-9);

  // The stored normalisation maps the statistics images' latents to mean 0, std 1.
  EXPECT_GT(r.latent_std, 0);
  EXPECT_DOUBLE_EQ(r.model.config().scaling_factor, 1 / r.latent_std);
  EXPECT_DOUBLE_EQ(r.model.config().shift_factor, r.latent_mean);
  const int64_t m = r.model.config().latent_numel();
  std::vector<float> z(64 * m);
  r.model.encode(train.data(), 64, z.data());
  double s = 0, sq = 0;
  for (float v : z) {
    const double u = (v - r.model.config().shift_factor) * r.model.config().scaling_factor;
    s += u;
    sq += u * u;
  }
  EXPECT_NEAR(s / z.size(), 0.0, 1e-4);
  EXPECT_NEAR(sq / z.size(), 1.0, 1e-4);
}

TEST(AutoencoderTraining, SameSeedSameModel) {
  const std::vector<float> train = blob_images(32, 16, 3);
  jobs::AutoencoderTrainingOptions o = small_options();
  o.steps = 10;
  const jobs::AutoencoderTrainingResult a = jobs::train_autoencoder(train, {}, o);
  const jobs::AutoencoderTrainingResult b = jobs::train_autoencoder(train, {}, o);
  EXPECT_EQ(a.model.parameters(), b.model.parameters());
  EXPECT_EQ(a.train_loss, b.train_loss);
  o.seed = 1;
  const jobs::AutoencoderTrainingResult c = jobs::train_autoencoder(train, {}, o);
  EXPECT_NE(a.model.parameters(), c.model.parameters());
}

TEST(AutoencoderTraining, RefusesBadInputWithOneLine) {
  const std::vector<float> train = blob_images(8, 16, 4);
  jobs::AutoencoderTrainingOptions o = small_options();
  auto message = [&](std::span<const float> images, const jobs::AutoencoderTrainingOptions& options) {
    try {
      jobs::train_autoencoder(images, {}, options);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(std::span<const float>(train).first(100), o).find("not a whole number of images"),
            std::string::npos);
  o.batch = 9;
  EXPECT_NE(message(train, o).find("larger than the training set"), std::string::npos);
  o.batch = 4;
  o.steps = 0;
  EXPECT_NE(message(train, o).find("--steps"), std::string::npos);
  o.steps = 1;
  o.model.image_size = 18;  // not a multiple of the downsampling
  EXPECT_NE(message(train, o).find("image_size"), std::string::npos);
}

}  // namespace
