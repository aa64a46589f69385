// The training config's keys: sample_every needs an autoencoder (refused at validation, key named),
// preview_captions only for text models, an autoencoder that does not decode the model's latents is refused
// before training starts, naming the key and the file; the held-out evaluation's keys; every key round-trips.
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

// Held-out evaluation: refused with the key named when it cannot work.
const std::string kEval = kModel + "batch_size: 4\n";

TEST(TrainConfig, HeldoutEvalKeys) {
  EXPECT_EQ(error_of(kEval + "eval_every: 10\n"), "");  // synthetic data: its own held-out stream
  EXPECT_EQ(error_of(kEval + "data: /shards\neval_every: 10\n"),
            "run.yaml: key 'eval_every': needs eval_data (a held-out shard directory) or eval_fraction (a part of the "
            "training shards)");
  EXPECT_EQ(error_of(kEval + "data: /shards\neval_every: 10\neval_fraction: 0.1\n"), "");
  EXPECT_EQ(error_of(kEval + "data: /shards\neval_every: 10\neval_fraction: 0.1\neval_data: /held\n"),
            "run.yaml: key 'eval_fraction': give eval_data or eval_fraction, not both");
  EXPECT_EQ(error_of(kEval + "data: /shards\neval_every: 10\neval_fraction: 0.7\n"),
            "run.yaml: key 'eval_fraction': must be in [0, 0.5]");
  EXPECT_EQ(error_of(kEval + "keep_best: true\n"),
            "run.yaml: key 'keep_best': needs eval_every > 0 (the best is by held-out bits/dim)");
  EXPECT_EQ(error_of(kEval + "eval_every: 10\neval_batches: 0\n"), "run.yaml: key 'eval_batches': must be >= 1");
}

TEST(TrainConfig, ARepeatedKeyIsRefused) {
  EXPECT_EQ(error_of(kModel + "steps: 10\nlr: 1e-4\nsteps: 20\n"), "run.yaml: key 'steps': given twice (line 12)");
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

// to_yaml writes every key under the name from_yaml reads: a config with no field at its default survives the
// round trip field for field (a key missing from the writer, or written under another name, fails here).
TEST(TrainConfig, ToYamlRoundTripsEveryKey) {
  jobs::TrainConfig c;
  c.model.in_channels = 3;
  c.model.img_size = 12;
  c.model.patch_size = 2;
  c.model.channels = 48;
  c.model.num_blocks = 2;
  c.model.layers_per_block = {1, 3};
  c.model.head_dim = 24;
  c.model.txt_size = 5;
  c.model.txt_dim = 7;
  c.model.cond_top_only = false;
  c.model.soft_clip = 2.5;
  c.model.seq_order = core::SeqOrder::R2L;
  c.model.use_softplus = false;
  c.model.use_final_norm = false;
  c.model.pt_seq_len = 4;
  c.noise_std = 0.1234567890123;
  c.lr = 3e-4;
  c.min_lr = 1.5e-6;
  c.warmup_steps = 7;
  c.steps = 99;
  c.batch_size = 12;
  c.drop_label = 0.25;
  c.latent_norm_regularization = 2e-3;
  c.weight_decay = 0.05;
  c.beta1 = 0.8;
  c.beta2 = 0.99;
  c.adam_eps = 1e-6;
  c.grad_clip = 0.5;
  c.ema = 0.999;
  c.max_bad_steps = 4;
  c.cfg = 1.5;
  c.data = "/data/shards: with a colon";
  c.seed = 17;
  c.output_dir = "out dir/run";
  c.checkpoint_dir = "ckpts";
  c.init_weights = "w.safetensors";
  c.checkpoint_every = 11;
  c.keep_checkpoints = 5;
  c.model.use_swiglu = c.model.use_qk_norm = c.model.use_post_norm = c.model.hf_style_rope = true;
  c.model.use_bias = c.model.sos = false;
  c.model.norm_type = core::NormType::kRmsNorm;
  c.model.attention_heads = 4;
  c.model.kv_heads = 2;
  c.model.top_block_channels = 128;
  c.checkpoint_async = false;
  c.denoiser_lr = 3e-4;
  c.eval_every = 9;
  c.eval_data = "/data/heldout: here";
  c.eval_batches = 6;
  c.keep_best = true;
  c.sample_every = 13;
  c.autoencoder = "ae.safetensors";
  c.text_encoder = "flan-t5-xl";
  c.preview_captions = {"red heart", "a cat, sleeping"};
  c.log_every = 3;
  c.tp = 2;
  c.tp_shallow = true;
  c.dp = 3;
  c.zero1 = true;
  c.recompute_layers = true;
  c.bucket_mb = 8;
  c.threads = 2;
  c.device = "cuda";
  c.precision = "fp32";
  const jobs::TrainConfig r = jobs::TrainConfig::from_yaml(c.to_yaml(), "generated.yaml");
  EXPECT_EQ(r.model.to_official_json(), c.model.to_official_json());
  EXPECT_EQ(r.model.layers_per_block, c.model.layers_per_block);
  EXPECT_EQ(r.model.pt_seq_len, c.model.pt_seq_len);
  EXPECT_EQ(r.noise_std, c.noise_std);  // exact: doubles are written with all their digits
  EXPECT_EQ(r.lr, c.lr);
  EXPECT_EQ(r.min_lr, c.min_lr);
  EXPECT_EQ(r.warmup_steps, c.warmup_steps);
  EXPECT_EQ(r.steps, c.steps);
  EXPECT_EQ(r.batch_size, c.batch_size);
  EXPECT_EQ(r.drop_label, c.drop_label);
  EXPECT_EQ(r.latent_norm_regularization, c.latent_norm_regularization);
  EXPECT_EQ(r.weight_decay, c.weight_decay);
  EXPECT_EQ(r.beta1, c.beta1);
  EXPECT_EQ(r.beta2, c.beta2);
  EXPECT_EQ(r.adam_eps, c.adam_eps);
  EXPECT_EQ(r.grad_clip, c.grad_clip);
  EXPECT_EQ(r.ema, c.ema);
  EXPECT_EQ(r.max_bad_steps, c.max_bad_steps);
  EXPECT_EQ(r.cfg, c.cfg);
  EXPECT_EQ(r.data, c.data);
  EXPECT_EQ(r.seed, c.seed);
  EXPECT_EQ(r.output_dir, c.output_dir);
  EXPECT_EQ(r.checkpoint_dir, c.checkpoint_dir);
  EXPECT_EQ(r.init_weights, c.init_weights);
  EXPECT_EQ(r.checkpoint_every, c.checkpoint_every);
  EXPECT_EQ(r.keep_checkpoints, c.keep_checkpoints);
  EXPECT_EQ(r.checkpoint_async, c.checkpoint_async);
  EXPECT_EQ(r.denoiser_lr, c.denoiser_lr);
  EXPECT_EQ(r.eval_every, c.eval_every);
  EXPECT_EQ(r.eval_data, c.eval_data);
  EXPECT_EQ(r.eval_fraction, c.eval_fraction);
  EXPECT_EQ(r.eval_batches, c.eval_batches);
  EXPECT_EQ(r.keep_best, c.keep_best);
  EXPECT_EQ(r.sample_every, c.sample_every);
  EXPECT_EQ(r.autoencoder, c.autoencoder);
  EXPECT_EQ(r.text_encoder, c.text_encoder);
  EXPECT_EQ(r.preview_captions, c.preview_captions);
  EXPECT_EQ(r.log_every, c.log_every);
  EXPECT_EQ(r.tp, c.tp);
  EXPECT_EQ(r.tp_shallow, c.tp_shallow);
  EXPECT_EQ(r.dp, c.dp);
  EXPECT_EQ(r.zero1, c.zero1);
  EXPECT_EQ(r.recompute_layers, c.recompute_layers);
  EXPECT_EQ(r.bucket_mb, c.bucket_mb);
  EXPECT_EQ(r.threads, c.threads);
  EXPECT_EQ(r.device, c.device);
  EXPECT_EQ(r.precision, c.precision);
  // And the defaults survive too.
  const jobs::TrainConfig defaults;
  EXPECT_EQ(jobs::TrainConfig::from_yaml(defaults.to_yaml(), "defaults.yaml").to_yaml(), defaults.to_yaml());
}

TEST(TrainConfig, DeviceAndPrecision) {
  EXPECT_EQ(error_of(kModel + "device: gpu\n"), "run.yaml: key 'device': expected cpu or cuda, got 'gpu'");
  EXPECT_EQ(error_of(kModel + "device: cuda\nprecision: fp16\n"),
            "run.yaml: key 'precision': expected fp32 or bf16, got 'fp16'");
  EXPECT_EQ(error_of(kModel + "precision: bf16\n"),
            "run.yaml: key 'precision': bf16 is for device: cuda (the CPU trains in fp32)");
  EXPECT_EQ(jobs::TrainConfig::from_yaml(kModel, "run.yaml").effective_precision(), "fp32");
  EXPECT_EQ(jobs::TrainConfig::from_yaml(kModel + "device: cuda\n", "run.yaml").effective_precision(), "bf16");
  EXPECT_EQ(jobs::TrainConfig::from_yaml(kModel + "device: cuda\nprecision: fp32\n", "run.yaml").effective_precision(),
            "fp32");
}

// The official keys vae and text: hub names (nothing here downloads) are ignored, local paths are used.
TEST(TrainConfig, OfficialVaeAndTextKeysTakeLocalPaths) {
  const jobs::TrainConfig hub =
      jobs::TrainConfig::from_yaml(kModel + "vae: stabilityai/sd-vae-ft-ema\ntext: google/flan-t5-xl\n", "run.yaml");
  EXPECT_EQ(hub.autoencoder, "");
  EXPECT_EQ(hub.text_encoder, "");
  const std::string ae = std::string(STARFLOW_SOURCE_DIR) + "/data/pretrained/ae_fashion_mnist_32.safetensors";
  const std::string folder = std::string(STARFLOW_SOURCE_DIR) + "/tests/golden/data";
  const jobs::TrainConfig local =
      jobs::TrainConfig::from_yaml(kModel + "vae: " + ae + "\ntext: " + folder + "\n", "run.yaml");
  EXPECT_EQ(local.autoencoder, ae);
  EXPECT_EQ(local.text_encoder, folder);
  // Our own keys win over the official ones.
  EXPECT_EQ(jobs::TrainConfig::from_yaml(kModel + "vae: " + ae + "\nautoencoder: other.safetensors\n", "run.yaml")
                .autoencoder,
            "other.safetensors");
}
