// The training job's configuration: a YAML file with the official ml-starflow keys (model and recipe) plus
// ours (data, checkpoints, outputs, layout). Unknown keys and invalid values are refused with the key named.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/models/flow_config.h"

namespace starflow::jobs {

struct TrainConfig {
  core::FlowConfig model;
  // Recipe (spec §8.1).
  double noise_std = 0.3;
  double lr = 1e-4, min_lr = 1e-6;
  int64_t warmup_steps = 100;
  int64_t steps = 1000;                  // optimiser steps in total
  int64_t batch_size = 32;               // global, over all data-parallel ranks
  double drop_label = 0.1;
  double latent_norm_regularization = 1e-4;
  double weight_decay = 1e-4, beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double denoiser_lr = 1e-4;             // the learnable self-denoiser's own AdamW (betas 0.9/0.999, weight decay
                                         // 1e-4, the flow's warm-up + cosine shape), as the official trainer
  double grad_clip = 0;                  // 0: off (the flow's gradients; the denoiser's are not clipped)
  double ema = 0;                        // EMA decay of the weights; 0: off
  int64_t max_bad_steps = 10;            // abort after this many non-finite steps in a row
  double cfg = 3.0;                      // guidance of the preview samples
  // Data.
  std::string data = "synthetic";        // "synthetic" or a directory / glob of latent shards
  // Run.
  uint64_t seed = 0;
  std::string output_dir = "out";
  std::string checkpoint_dir;            // default: <output_dir>/checkpoints
  std::string init_weights;              // a fresh run starts from these official-name safetensors
  int64_t checkpoint_every = 0;          // 0: only at the end
  int64_t keep_checkpoints = 3;
  bool checkpoint_async = true;          // periodic checkpoints: snapshot to host memory, write in the background
                                         // while training goes on (false: training waits for each write)
  int64_t sample_every = 0;              // 0: no preview grids
  int64_t eval_every = 0;                // held-out bits/dim every this many steps (0: off)
  std::string eval_data;                 // held-out shards (a directory or glob); synthetic data: its own stream
  double eval_fraction = 0;              // or this fraction of the training shards, held out of training
  int64_t eval_batches = 4;              // global batches of batch_size per evaluation (bounds its cost)
  bool keep_best = false;                // keep the best checkpoint by held-out bits/dim in <checkpoints>/best
  std::string autoencoder;               // decodes the preview grids (required when sample_every > 0)
  std::string text_encoder;              // encodes the preview captions: a T5 folder or word vectors (empty:
                                         // the npm cache's word vectors). The official keys `vae` and `text`
                                         // set autoencoder and text_encoder when they name local paths.
  std::vector<std::string> preview_captions;  // text models: one preview row each (default: the null caption)
  int64_t log_every = 10;
  int64_t tp = 1;                        // tensor-parallel width (the deep block is split over tp ranks)
  bool tp_shallow = false;               // split the shallow blocks over the tp ranks too
  int64_t dp = 0;                        // data-parallel width; 0: the launched ranks / tp
  bool zero1 = false;                    // shard the AdamW moments over the data-parallel ranks
  bool recompute_layers = false;         // keep only each layer's input; recompute the rest in backward
  int64_t bucket_mb = 4;                 // gradient all-reduce bucket size (MiB), overlapped with backward
  int64_t threads = 0;                   // CPU threads per rank; 0: all cores / ranks on the node
  std::string device = "cpu";            // "cpu" or "cuda" (one GPU per rank, NCCL between them)
  std::string precision;                 // "fp32" or "bf16" (bf16 weights and activations, fp32 master
                                         // weights and moments); default: fp32 on the CPU, bf16 on CUDA
  double watchdog_seconds = 600;         // a rank without progress this long ends the job (exit 75: requeue
                                         // from the last checkpoint); longer than the slowest checkpoint write
                                         // or preview; 0: no watchdog
  double straggler_ratio = 1.5;          // a rank working this many times the median step is reported (0: off)
  double preflight_slow = 0.7;           // `starflow preflight`: a rank below this fraction of the expected
                                         // GEMM or exchange rate is slow (0: never slow, only failed)
  double preflight_expect_gflops = 0;    // the node type's GEMM rate; 0: the median of the job's ranks

  std::string source_text;               // the YAML as given, stored in checkpoints

  // Parses YAML text; `origin` names the file in errors ("<origin>: key 'x': ...").
  static TrainConfig from_yaml(const std::string& text, const std::string& origin);
  static TrainConfig from_file(const std::string& path);
  // The config as YAML under the keys from_yaml reads (every key, defaults included), so that a generated run
  // (the demo's) leaves a file a user can read, edit and rerun.
  std::string to_yaml() const;
  void validate(const std::string& origin) const;
  // The precision in effect: `precision`, or the device's default.
  std::string effective_precision() const { return !precision.empty() ? precision : device == "cuda" ? "bf16" : "fp32"; }
};

}  // namespace starflow::jobs
