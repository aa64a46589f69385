// The training config's preview keys: sample_every needs an autoencoder (refused at validation, key named),
// preview_captions only for text models, and an autoencoder that does not decode the model's latents is
// refused before training starts, naming the key and the file.
#include <gtest/gtest.h>

#include <string>

#include "jobs/preview_grid.h"
#include "jobs/train_config.h"

using namespace starflow;

namespace {

const std::string kModel = R"(
channel_size: 4
img_size: 8
channels: 40
head_dim: 20
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 4
)";

std::string error_of(const std::string& yaml) {
  try {
    jobs::TrainConfig::from_yaml(yaml, "run.yaml");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TrainConfig, PreviewGridsNeedAnAutoencoder) {
  EXPECT_EQ(error_of(kModel + "sample_every: 100\n"),
            "run.yaml: key 'autoencoder': required when sample_every > 0 (the preview grids decode the samples "
            "through it)");
  const std::string ae = std::string(STARFLOW_SOURCE_DIR) + "/data/pretrained/ae_fashion_mnist_32.safetensors";
  const jobs::TrainConfig c = jobs::TrainConfig::from_yaml(kModel + "sample_every: 100\nautoencoder: " + ae + "\n", "run.yaml");
  EXPECT_EQ(c.sample_every, 100);
  EXPECT_EQ(c.autoencoder, ae);
  const jobs::PreviewGrid grid(c);
  EXPECT_EQ(grid.rows(), 3);  // one per class (txt_dim 4 = 3 classes + the null class)
  EXPECT_EQ(grid.path_for(300), "out/samples/step_00000300.png");
  // No previews: no autoencoder needed.
  EXPECT_EQ(error_of(kModel), "");
}

TEST(TrainConfig, PreviewCaptionsOnlyForTextModels) {
  EXPECT_EQ(error_of(kModel + "preview_captions: [red heart, cat]\n"),
            "run.yaml: key 'preview_captions': only for text-conditioned models (txt_size > 1)");
  EXPECT_EQ(error_of(kModel + "preview_captions: red heart\n"),
            "run.yaml: key 'preview_captions': expected a list of captions, e.g. [red heart, cat]");
  const jobs::TrainConfig c = jobs::TrainConfig::from_yaml(
      "channel_size: 4\nimg_size: 8\nchannels: 64\nhead_dim: 32\nblocks: 2\nlayers_per_block: [1, 1]\n"
      "txt_size: 4\ntxt_dim: 100\npreview_captions: [red heart, \"\"]\n",
      "text.yaml");
  EXPECT_EQ(c.preview_captions, (std::vector<std::string>{"red heart", ""}));
}

TEST(TrainConfig, AnAutoencoderOfOtherLatentsIsRefusedNamingTheKey) {
  // The bundled autoencoder makes 4×8×8 latents; this model samples 4×4×4.
  const std::string ae = std::string(STARFLOW_SOURCE_DIR) + "/data/pretrained/ae_fashion_mnist_32.safetensors";
  jobs::TrainConfig c = jobs::TrainConfig::from_yaml(
      "channel_size: 4\nimg_size: 4\nchannels: 40\nhead_dim: 20\nblocks: 2\nlayers_per_block: [1, 1]\n"
      "sample_every: 10\nautoencoder: " + ae + "\n", "run.yaml");
  try {
    jobs::PreviewGrid grid(c);
    ADD_FAILURE() << "a mismatched autoencoder was accepted";
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()),
              "key 'autoencoder': " + ae + ": makes latents of 4×8², the model samples 4×4²");
  }
  c.autoencoder = "/nonexistent/ae.safetensors";
  try {
    jobs::PreviewGrid grid(c);
    ADD_FAILURE() << "a missing autoencoder was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("key 'autoencoder': /nonexistent/ae.safetensors"), std::string::npos) << e.what();
  }
}
