// The convolutional autoencoder: whole-model gradients against central differences in double, shapes and
// names, batch independence, a short AdamW run that must learn a synthetic image set, and the weights
// file (exact round trip, config metadata, one-line errors).
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "core/io/autoencoder_weights.h"
#include "core/models/autoencoder.h"
#include "core/optim/adamw.h"
#include "tests/unit/gradcheck.h"

using namespace starflow::core;
using starflow::tests::gradients_match;
using starflow::tests::numeric_gradient;
using starflow::tests::random_vector;
namespace fs = std::filesystem;

namespace {

// Every kind of layer, both halves, one mid layer, in a model small enough for finite differences over
// all ~2.5k parameters.
AutoencoderConfig tiny_config() {
  AutoencoderConfig c;
  c.image_channels = 2;
  c.image_size = 8;
  c.latent_channels = 2;
  c.channels = {4, 8};
  c.norm_groups = 2;
  c.mid_layers = 1;
  return c;
}

TEST(Autoencoder, GradientsOfTheWholeLossMatchFiniteDifferences) {
  Autoencoder<double> model(tiny_config());
  model.init_parameters(1);
  std::mt19937_64 rng(2);
  // Randomise the GroupNorm affines too, so their gradients are not checked only at γ = 1, β = 0.
  for (double& p : model.parameters()) p += 0.1 * std::uniform_real_distribution<double>(-1, 1)(rng);
  const int64_t B = 2;
  const std::vector<double> images = random_vector(B * model.config().image_numel(), rng);
  const AutoencoderLossWeights weights{0.5, 0.1};  // every loss term on

  model.zero_gradients();
  const AutoencoderLoss first = model.forward(images.data(), B, weights);
  EXPECT_NEAR(first.total, first.mse + 0.5 * first.l1 + 0.1 * first.latent_l2, 1e-15);
  model.backward();
  const std::vector<double> analytic = model.gradients();
  auto loss = [&] { return model.forward(images.data(), B, weights).total; };
  std::vector<double>& params = model.parameters();
  const std::vector<double> numeric = numeric_gradient(params, loss);
  // Check per tensor, so a failure names the layer.
  for (const ParameterView& v : model.layout().views()) {
    const std::vector<double> a(analytic.begin() + v.offset, analytic.begin() + v.offset + v.size);
    const std::vector<double> n(numeric.begin() + v.offset, numeric.begin() + v.offset + v.size);
    EXPECT_TRUE(gradients_match(a, n, 1e-6)) << v.name;
  }
}

TEST(Autoencoder, GradientsAccumulateOverBackwardCalls) {
  Autoencoder<double> model(tiny_config());
  model.init_parameters(3);
  std::mt19937_64 rng(4);
  const std::vector<double> images = random_vector(3 * model.config().image_numel(), rng);
  model.zero_gradients();
  model.forward(images.data(), 3);
  model.backward();
  const std::vector<double> once = model.gradients();
  model.forward(images.data(), 3);
  model.backward();
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(model.gradients()[i], 2 * once[i], 1e-12 + 1e-12 * std::fabs(once[i]));
}

TEST(Autoencoder, ShapesNamesAndSize) {
  AutoencoderConfig c;  // the default: 32×32 images, widths 32/64/64, 4 latent channels at 8×8
  c.image_channels = 3;
  Autoencoder<float> model(c);
  EXPECT_EQ(c.downsampling(), 4);
  EXPECT_EQ(c.latent_size(), 8);
  EXPECT_EQ(model.layout().at("encoder.conv_in.weight").shape, (Shape{32, 3, 3, 3}));
  EXPECT_EQ(model.layout().at("encoder.down.1.conv.weight").shape, (Shape{64, 64, 3, 3}));
  EXPECT_EQ(model.layout().at("encoder.conv_out.weight").shape, (Shape{4, 64, 3, 3}));
  EXPECT_EQ(model.layout().at("decoder.conv_in.weight").shape, (Shape{64, 4, 3, 3}));
  EXPECT_EQ(model.layout().at("decoder.up.1.conv.weight").shape, (Shape{32, 64, 3, 3}));
  EXPECT_EQ(model.layout().at("decoder.conv_out.bias").shape, (Shape{3}));
  EXPECT_EQ(model.layout().at("decoder.norm_out.weight").shape, (Shape{32}));
  // Small enough to keep in the repository.
  EXPECT_LT(model.layout().parameter_count(), 200'000);

  model.init_parameters(5);
  const int64_t B = 3;
  std::mt19937_64 rng(6);
  std::vector<float> images(B * 3 * 32 * 32);
  for (float& x : images) x = std::uniform_real_distribution<float>(-1, 1)(rng);
  std::vector<float> z(B * 4 * 8 * 8, NAN), x_hat(images.size(), NAN);
  model.encode(images.data(), B, z.data());
  model.decode(z.data(), B, x_hat.data());
  for (float v : z) ASSERT_TRUE(std::isfinite(v));
  for (float v : x_hat) ASSERT_TRUE(std::isfinite(v));
  // forward() runs the same two halves.
  model.forward(images.data(), B);
  EXPECT_EQ(model.latents(), z);
  EXPECT_EQ(model.reconstruction(), x_hat);
}

// GroupNorm normalises per image, so an image's latent does not depend on the rest of its batch.
TEST(Autoencoder, EncodingDoesNotDependOnTheBatch) {
  Autoencoder<double> model(tiny_config());
  model.init_parameters(7);
  std::mt19937_64 rng(8);
  const int64_t B = 4, n = model.config().image_numel(), m = model.config().latent_numel();
  const std::vector<double> images = random_vector(B * n, rng);
  std::vector<double> batch_z(B * m), one_z(m);
  model.encode(images.data(), B, batch_z.data());
  model.encode(images.data() + 2 * n, 1, one_z.data());
  for (int64_t i = 0; i < m; ++i) EXPECT_NEAR(one_z[i], batch_z[2 * m + i], 1e-14);
}

// Every op sums in an order fixed by the shapes alone, so training is bit-reproducible across
// OMP_NUM_THREADS (a resumed run may land on a machine with a different core count).
TEST(Autoencoder, GradientsAreIdenticalForAnyThreadCount) {
  AutoencoderConfig c;
  Autoencoder<float> model(c);
  model.init_parameters(14);
  const int64_t B = 4;
  std::mt19937_64 rng(15);
  std::vector<float> images(B * c.image_numel());
  for (float& x : images) x = std::uniform_real_distribution<float>(-1, 1)(rng);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    model.zero_gradients();
    model.forward(images.data(), B, AutoencoderLossWeights{0.1, 0.01});
    model.backward();
    omp_set_num_threads(saved);
    return model.gradients();
  };
  const std::vector<float> one = run(1);
  EXPECT_EQ(one, run(2));
  EXPECT_EQ(one, run(3));
}

// Smooth random images (a few low-frequency waves each) that a small autoencoder can learn quickly.
std::vector<float> synthetic_images(int64_t N, int64_t C, int64_t S, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> images(N * C * S * S);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const double fx = 1 + 2 * u(rng), fy = 1 + 2 * u(rng), phase = 6.28 * u(rng), amp = 0.5 + 0.4 * u(rng);
      for (int64_t y = 0; y < S; ++y)
        for (int64_t x = 0; x < S; ++x)
          images[((i * C + c) * S + y) * S + x] =
              static_cast<float>(amp * std::sin(fx * 6.28 * x / S + phase) * std::cos(fy * 6.28 * y / S));
    }
  return images;
}

TEST(Autoencoder, AdamWLearnsASyntheticImageSet) {
  AutoencoderConfig c;
  c.image_channels = 1;
  c.image_size = 16;
  c.channels = {8, 16, 16};
  c.norm_groups = 4;
  c.mid_layers = 0;
  Autoencoder<float> model(c);
  model.init_parameters(9);
  // ~0.5 s on one core: 300 steps of 8 images.
  const int64_t N = 32, B = 8, steps = 300, n = c.image_numel();
  const std::vector<float> images = synthetic_images(N, 1, 16, 10);
  AdamW<float> opt(model.layout().total_size(), AdamWConfig{0.9, 0.99, 1e-8, 0.0});
  const WarmupCosineSchedule schedule{3e-3, 1e-4, 20, steps};
  double first = 0, last = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const float* batch = images.data() + (step % (N / B)) * B * n;
    model.zero_gradients();
    const double loss = model.forward(batch, B).total;
    model.backward();
    opt.step(model.parameters(), model.gradients(), schedule.lr(step));
    if (step == 0) first = loss;
    last = loss;
  }
  EXPECT_LT(last, first / 20) << "first " << first << ", last " << last;
}

// ---------------------------------------------------------------- weights file

class AutoencoderWeightsTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* test = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) /
           ("starflow_autoencoder_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(AutoencoderWeightsTest, SaveLoadRoundTripIsExact) {
  AutoencoderConfig c = tiny_config();
  c.scaling_factor = 0.8125;
  c.shift_factor = -0.03125;
  Autoencoder<float> model(c);
  model.init_parameters(11);
  io::save_autoencoder(model, file("ae.safetensors"), "F32", {{"note", "test"}});
  const Autoencoder<float> loaded = io::load_autoencoder<float>(file("ae.safetensors"));
  EXPECT_EQ(loaded.parameters(), model.parameters());
  EXPECT_EQ(loaded.config().to_json(), c.to_json());
  EXPECT_EQ(loaded.config().scaling_factor, 0.8125);
  const io::SafeTensorsFile st = io::SafeTensorsFile::open(file("ae.safetensors"));
  EXPECT_EQ(st.metadata_value("note"), "test");
  EXPECT_EQ(st.metadata_value("format"), "starflow-autoencoder-v1");
  EXPECT_EQ(st.info("encoder.conv_in.weight").shape, (Shape{4, 2, 3, 3}));
}

TEST_F(AutoencoderWeightsTest, HalfPrecisionFileHoldsRoundedWeights) {
  Autoencoder<float> model(tiny_config());
  model.init_parameters(12);
  io::save_autoencoder(model, file("f32.safetensors"), "F32");
  io::save_autoencoder(model, file("f16.safetensors"), "F16");
  EXPECT_LT(fs::file_size(file("f16.safetensors")), fs::file_size(file("f32.safetensors")));
  const Autoencoder<float> loaded = io::load_autoencoder<float>(file("f16.safetensors"));
  for (size_t i = 0; i < model.parameters().size(); ++i)
    ASSERT_NEAR(loaded.parameters()[i], model.parameters()[i], 1e-3 * std::fabs(model.parameters()[i]) + 1e-7);
}

TEST_F(AutoencoderWeightsTest, DamagedFilesGiveOneLineErrorsNamingTheProblem) {
  Autoencoder<float> model(tiny_config());
  model.init_parameters(13);
  // A weights file from a different architecture: the missing tensor is named.
  AutoencoderConfig other = tiny_config();
  other.mid_layers = 0;
  Autoencoder<float> small(other);
  io::save_autoencoder(small, file("small.safetensors"));
  const io::SafeTensorsFile st = io::SafeTensorsFile::open(file("small.safetensors"));
  try {
    io::load_autoencoder_weights(model, st);
    FAIL() << "loading weights of another architecture succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("encoder.mid.0.norm.weight"), std::string::npos) << e.what();
  }
  // A config that breaks a rule is refused with the key named.
  std::vector<io::TensorToWrite> none;
  io::write_safetensors(file("bad.safetensors"), none, {{"config", R"({"image_size": 30})"}});
  try {
    io::load_autoencoder<float>(file("bad.safetensors"));
    FAIL() << "a config with image_size 30 and downsampling 4 was accepted";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("bad.safetensors"), std::string::npos) << what;
    EXPECT_NE(what.find("image_size"), std::string::npos) << what;
  }
  EXPECT_THROW(io::save_autoencoder(model, file("x.safetensors"), "BF16"), std::invalid_argument);
}

TEST(AutoencoderConfigJson, RoundTripAndRefusals) {
  AutoencoderConfig c;
  c.channels = {16, 32, 32, 64};
  c.scaling_factor = 1.7;
  const AutoencoderConfig back = AutoencoderConfig::from_json(c.to_json());
  EXPECT_EQ(back.channels, c.channels);
  EXPECT_EQ(back.downsampling(), 8);
  EXPECT_EQ(back.scaling_factor, 1.7);
  EXPECT_THROW(AutoencoderConfig::from_json(R"({"colour": 1})"), std::invalid_argument);
  EXPECT_THROW(AutoencoderConfig::from_json(R"({"channels": [32, 64, 64], "downsampling": 8})"),
               std::invalid_argument);
  EXPECT_THROW(AutoencoderConfig::from_json(R"({"channels": [30, 64, 64]})"), std::invalid_argument);
  EXPECT_THROW(AutoencoderConfig::from_json("not json"), std::invalid_argument);
}

}  // namespace
