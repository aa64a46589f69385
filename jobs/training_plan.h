// The performance model behind `starflow plan`: for a STARFlow config, a cluster and a TP × DP (× ZeRO-1)
// layout, the per-GPU memory, the step time (compute from the FLOP count, tensor-parallel and data-parallel
// communication from ring costs) and the MFU. Pure arithmetic: no MPI, no GPU, testable anywhere.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/models/flow_config.h"

namespace starflow::jobs {

// One node type of a GPU cluster. Bandwidths are per GPU; GB = 1e9 bytes.
struct ClusterSpec {
  int gpus_per_node = 8;
  double nvlink_gb_per_s = 450;     // per direction
  double network_gbit_per_s = 400;  // InfiniBand per GPU (one NIC per GPU)
  double peak_tflops = 989;         // dense bf16
  double memory_gb = 141;
  double hbm_gb_per_s = 4300;       // measured H200 copy bandwidth, for the optimizer step
  double reserved_gb = 4;           // CUDA context, cuBLAS/NCCL workspaces, allocator slack
  double nvlink_latency_us = 10;    // per collective inside a node
  double network_latency_us = 20;   // per collective (bucket) across nodes
};

// How training runs on the GPUs, and the model's one free constant: the efficiency.
struct TrainingAssumptions {
  // Fraction of peak that the counted FLOPs reach. Default: the official code's measured 41.8% MFU for the
  // 3.86B config on one H200 (its published anchor). `--layer-ms` / `--calibrate-cpu` replace it.
  double efficiency = 0.418;
  int weight_bytes = 2;       // bf16 working weights
  int gradient_bytes = 4;     // fp32 gradient buffer (accumulated over micro-batches, all-reduced as is)
  int master_bytes = 4;       // fp32 master weights
  int moment_bytes = 8;       // AdamW m and v, fp32
  int activation_bytes = 2;   // bf16 saved activations; LayerNorm statistics stay fp32
  // false: attention keeps its probabilities [B, heads, S, S] for backward, as core/models/transformer_layer
  // does today; true: a fused (flash) attention keeps only the fp32 log-sum-exp [B, heads, S].
  bool fused_attention = false;
  // Layer recompute (FlowModel::set_recompute): a layer keeps only its input [B, S, C]; one layer's full
  // activations serve them all, and backward runs each layer's forward once more (4 forwards' FLOPs instead of 3).
  bool recompute_layers = false;
  // The design replicates the shallow blocks on every TP rank; true splits them like the deep block (their
  // compute, weights and activations divide by TP, and their layers add TP all-reduces).
  bool split_shallow_blocks = false;
  // Fraction of the last micro-batch's backward compute that can hide the data-parallel gradient reduction
  // (it starts with the first finished bucket and competes with compute for the GPU).
  double dp_overlap = 0.8;
  double bucket_mb = 25;      // gradient bucket: the last one is never hidden
};

struct Layout {
  int tp = 1;                 // tensor-parallel width (the deep block only; shallow blocks replicated)
  int dp = 1;                 // data-parallel replicas
  bool zero1 = false;         // optimizer state (master + moments) sharded over DP
  int64_t micro_batch = 0;    // samples per forward on one replica; 0: the largest divisor of the local batch that fits
  std::string name() const;   // "TP2×DP4 ZeRO-1"
};

// Parameters of a config by how tensor parallelism treats them: the deep block's QKV/fc1 (column) and
// proj/fc2 weights (row) are split over TP (with split_shallow_blocks, every block's); everything else is
// replicated on every TP rank.
struct ParameterSplit {
  int64_t sharded = 0;     // split over TP
  int64_t replicated = 0;  // whole on every rank
  int64_t total() const { return sharded + replicated; }
  double per_rank(int tp) const { return static_cast<double>(sharded) / tp + static_cast<double>(replicated); }
};

struct MemoryBreakdown {  // bytes per GPU
  double weights = 0, gradients = 0, optimizer = 0, activations = 0, workspace = 0, reserved = 0;
  double total() const { return weights + gradients + optimizer + activations + workspace + reserved; }
};

struct TimeBreakdown {  // seconds per optimizer step
  double compute = 0;        // forward + backward FLOPs at the calibrated efficiency
  double tensor_parallel = 0;  // the deep block's all-reduces (on the critical path)
  double data_parallel = 0;  // gradient all-reduce (or ZeRO-1 reduce-scatter), all of it
  double data_parallel_exposed = 0;  // the part not hidden behind backward
  double parameter_gather = 0;  // ZeRO-1: all-gather of the updated bf16 weights (not hidden)
  double optimizer = 0;      // gradient norm + AdamW, bound by HBM bandwidth
  double step() const { return compute + tensor_parallel + data_parallel_exposed + parameter_gather + optimizer; }
  double communication() const { return tensor_parallel + data_parallel_exposed + parameter_gather; }
};

struct LayoutPrediction {
  Layout layout;
  int64_t local_batch = 0, micro_batch = 0, accumulation = 1;
  MemoryBreakdown memory;
  bool fits = false;
  TimeBreakdown time;
  double images_per_second = 0, mfu = 0;
};

// ---- counts (the convention of the official code's published MFU: 3 × forward matmul + attention FLOPs) ----

// The deep block: the last one, which carries the text prefix and nearly all the layers.
int64_t deep_block_index(const core::FlowConfig& cfg);
// Sequence length of block k: image tokens plus the text prefix where the block is conditioned.
int64_t block_sequence_length(const core::FlowConfig& cfg, int64_t k);
// Exactly what core::StarFlowModel's ParameterLayout holds (alignment padding excluded).
ParameterSplit parameter_split(const core::FlowConfig& cfg, bool split_shallow_blocks = false);
// Whether block k's layers are split over TP.
bool block_is_split(const core::FlowConfig& cfg, int64_t k, bool split_shallow_blocks);
// Forward FLOPs of one transformer layer for one sample: 24·S·C² (matmuls) + 2·S²·C (causal attention).
double layer_forward_flops(int64_t width, int64_t tokens);
// Forward FLOPs of one sample through every layer of the model (embeddings and heads are not counted).
double forward_flops_per_sample(const core::FlowConfig& cfg);
// Training FLOPs of a step over `batch` samples: 3 × forward.
double train_flops_per_step(const core::FlowConfig& cfg, int64_t batch);
// The efficiency that a measured forward+backward time of one layer implies against a peak.
double efficiency_from_layer_time(double layer_ms, int64_t width, int64_t tokens, int64_t batch, double peak_tflops);

// ---- the model ----

// Throws std::invalid_argument with a one-line reason for a layout that cannot run this config on this
// cluster: TP not in 1..gpus_per_node or not dividing the heads, TP × DP ≠ GPUs, the global batch not
// divisible by DP, a micro-batch not dividing the local batch.
void validate_layout(const core::FlowConfig& cfg, const ClusterSpec& cluster, int gpus, int64_t global_batch,
                     const Layout& layout);

// Per-GPU memory of a layout at a given micro-batch.
MemoryBreakdown predict_memory(const core::FlowConfig& cfg, const ClusterSpec& cluster, const TrainingAssumptions& a,
                               const Layout& layout, int64_t micro_batch);

// Memory and time of one layout (validated first). With micro_batch 0 it picks the largest divisor of the
// local batch that fits (1 if none does; `fits` then says no).
LayoutPrediction predict_layout(const core::FlowConfig& cfg, const ClusterSpec& cluster,
                                const TrainingAssumptions& a, int gpus, int64_t global_batch, const Layout& layout);

struct PlanRequest {
  int gpus = 8;
  int64_t global_batch = 1024;
  int64_t micro_batch = 0;            // 0: auto
  std::vector<int> tp_choices{1, 2, 4, 8};
  std::vector<bool> zero_choices{false, true};
};

struct Plan {
  std::vector<LayoutPrediction> layouts;  // fitting ones by predicted img/s, then the ones that do not fit
  std::vector<std::string> refused;       // "TP=8: ..." for each candidate that validate_layout refused
};

Plan plan_layouts(const core::FlowConfig& cfg, const ClusterSpec& cluster, const TrainingAssumptions& a,
                  const PlanRequest& request);

}  // namespace starflow::jobs
