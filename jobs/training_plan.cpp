// The `starflow plan` performance model. Memory follows what the implementation keeps (LayerActivations,
// BlockActivations, the backward scratch); time is FLOPs at a calibrated efficiency plus ring-algorithm
// communication costs. The assumptions are stated next to each formula.
#include "jobs/training_plan.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace starflow::jobs {
namespace {

constexpr double kGB = 1e9;

int tp_width_of_block(const core::FlowConfig& cfg, const TrainingAssumptions& a, int64_t k, int tp) {
  return block_is_split(cfg, k, a.split_shallow_blocks) ? tp : 1;
}

// Bytes one transformer layer keeps for backward (LayerActivations) for B samples of S tokens, with the
// column-parallel outputs (qkv, attention output, fc1, GELU) and the heads split over tp ranks and the
// residual-stream tensors (input, ln1, mid, ln2) whole on every rank.
double layer_activation_bytes(const core::FlowConfig& cfg, const TrainingAssumptions& a, int64_t B, int64_t S,
                              int tp) {
  const double bsc = static_cast<double>(B) * S * cfg.channels, ab = a.activation_bytes;
  const double heads = static_cast<double>(cfg.num_heads()) / tp;
  const double residual = 4 * bsc * ab;
  const double split = 12 * bsc / tp * ab;
  const double norm_stats = 4.0 * B * S * 4;  // mean and rstd of both LayerNorms, fp32
  const double attention = a.fused_attention ? B * heads * S * 4.0 : B * heads * static_cast<double>(S) * S * ab;
  return residual + split + norm_stats + attention;
}

// Bytes one block keeps outside its layers (BlockActivations and the model's per-block outputs and logdets):
// the sequence after the last layer, the head's inputs, the embeddings (activation type), and the flow
// arithmetic (permuted input, SOS-shifted input, z, head output, output, logdet) in fp32.
double block_activation_bytes(const core::FlowConfig& cfg, const TrainingAssumptions& a, int64_t k, int64_t B) {
  const double T = static_cast<double>(cfg.tokens()), S = static_cast<double>(block_sequence_length(cfg, k));
  const double C = static_cast<double>(cfg.channels), D = static_cast<double>(cfg.token_dim());
  const double L = static_cast<double>(S - T);
  const double act = B * (S * C + 2 * T * C + std::max(T, L) * C) * a.activation_bytes;
  const double flow = B * T * D * (3 + 2 + 2) * 4.0 + B * T * 4.0;  // v, inp, z, o (2D), output, logdet; rrms
  return act + flow;
}

// The backward scratch (LayerScratch + BlockScratch), one set sized for the largest block.
double workspace_bytes(const core::FlowConfig& cfg, const TrainingAssumptions& a, int64_t B, int tp) {
  double worst = 0;
  for (int64_t k = 0; k < cfg.num_blocks; ++k) {
    const int t = tp_width_of_block(cfg, a, k, tp);
    const double S = static_cast<double>(block_sequence_length(cfg, k)), T = static_cast<double>(cfg.tokens());
    const double C = static_cast<double>(cfg.channels), D = static_cast<double>(cfg.token_dim());
    const double bsc = B * S * C, heads = static_cast<double>(cfg.num_heads()) / t;
    double elements = 2 * bsc + 12 * bsc / t;                 // d_mid, d_norm | d_attn, d_qkv, d_hidden, d_fc1
    if (!a.fused_attention) elements += B * heads * S * S;    // d_probs
    elements += 2 * bsc + 2 * B * T * C + B * std::max(T, S - T) * C;  // d_seq_a/b, d_h_img/norm, d_emb
    worst = std::max(worst, elements * a.activation_bytes + B * T * D * 5 * 4.0);  // dz, dv, d_o (2D), d_inp
  }
  return worst;
}

// Ring all-reduce: every rank sends and receives 2(p−1)/p of the buffer; reduce-scatter and all-gather
// half of that each.
double ring_time(double bytes, int p, double factor_of_all_reduce, double bandwidth_bytes_per_s, double latency_s,
                 int64_t collectives) {
  if (p <= 1 || bytes <= 0) return 0;
  return collectives * latency_s + factor_of_all_reduce * 2.0 * (p - 1) / p * bytes / bandwidth_bytes_per_s;
}

}  // namespace

std::string Layout::name() const { return "TP" + std::to_string(tp) + "xDP" + std::to_string(dp); }

int64_t deep_block_index(const core::FlowConfig& cfg) { return cfg.num_blocks - 1; }

int64_t block_sequence_length(const core::FlowConfig& cfg, int64_t k) {
  return cfg.tokens() + (cfg.block_is_conditioned(k) ? cfg.txt_size : 0);
}

bool block_is_split(const core::FlowConfig& cfg, int64_t k, bool split_shallow_blocks) {
  return split_shallow_blocks || k == deep_block_index(cfg);
}

ParameterSplit parameter_split(const core::FlowConfig& cfg, bool split_shallow_blocks) {
  const int64_t C = cfg.channels, D = cfg.token_dim(), E = cfg.txt_dim;
  ParameterSplit s;
  for (int64_t k = 0; k < cfg.num_blocks; ++k) {
    s.replicated += D + (C * D + C) + (2 * D * C + 2 * D);  // sos, proj_in, proj_out
    if (cfg.block_is_conditioned(k)) s.replicated += C * E + C;  // proj_txt
    if (cfg.use_final_norm) s.replicated += C;
    // Per layer: qkv (3C², 3C) and fc1 (4C², 4C) column-parallel, proj (C²) and fc2 (4C²) weights
    // row-parallel; the LayerNorms and the row-parallel biases (proj, fc2) replicated.
    const int64_t split = 12 * C * C + 7 * C, whole = 6 * C;
    const int64_t layers = cfg.layers_per_block[k];
    if (block_is_split(cfg, k, split_shallow_blocks)) {
      s.sharded += layers * split;
      s.replicated += layers * whole;
    } else {
      s.replicated += layers * (split + whole);
    }
  }
  return s;
}

double layer_forward_flops(int64_t width, int64_t tokens) {
  const double C = static_cast<double>(width), S = static_cast<double>(tokens);
  return 24 * S * C * C + 2 * S * S * C;
}

double forward_flops_per_sample(const core::FlowConfig& cfg) {
  double f = 0;
  for (int64_t k = 0; k < cfg.num_blocks; ++k)
    f += cfg.layers_per_block[k] * layer_forward_flops(cfg.channels, block_sequence_length(cfg, k));
  return f;
}

double train_flops_per_step(const core::FlowConfig& cfg, int64_t batch) {
  return 3.0 * static_cast<double>(batch) * forward_flops_per_sample(cfg);
}

double efficiency_from_layer_time(double layer_ms, int64_t width, int64_t tokens, int64_t batch, double peak_tflops) {
  if (!(layer_ms > 0) || !(peak_tflops > 0) || width < 1 || tokens < 1 || batch < 1)
    throw std::invalid_argument("a layer time needs a positive time, width, token count, batch and peak");
  const double flops = 3.0 * static_cast<double>(batch) * layer_forward_flops(width, tokens);
  return flops / (layer_ms * 1e-3 * peak_tflops * 1e12);
}

void validate_layout(const core::FlowConfig& cfg, const ClusterSpec& cluster, int gpus, int64_t global_batch,
                     const Layout& l) {
  auto refuse = [&](const std::string& why) { throw std::invalid_argument("TP=" + std::to_string(l.tp) + ": " + why); };
  const int64_t heads = cfg.num_heads();
  if (l.tp < 1 || l.dp < 1) refuse("TP and DP must be at least 1");
  if (heads % l.tp != 0)
    refuse("does not divide the " + std::to_string(heads) + " attention heads of the deep block (channels " +
           std::to_string(cfg.channels) + " / head_dim " + std::to_string(cfg.head_dim) + ")");
  if (l.tp > cluster.gpus_per_node)
    refuse("a tensor-parallel group must stay inside one node (" + std::to_string(cluster.gpus_per_node) +
           " GPUs per node): its all-reduces need NVLink");
  if (cluster.gpus_per_node % l.tp != 0)
    refuse("does not divide the " + std::to_string(cluster.gpus_per_node) +
           " GPUs of a node: a tensor-parallel group would straddle two nodes");
  if (static_cast<int64_t>(l.tp) * l.dp != gpus)
    refuse("TP " + std::to_string(l.tp) + " x DP " + std::to_string(l.dp) + " = " + std::to_string(l.tp * l.dp) +
           " ranks, but there are " + std::to_string(gpus) + " GPUs");
  if (global_batch < 1) refuse("the global batch must be at least 1");
  if (global_batch % l.dp != 0)
    refuse("the global batch " + std::to_string(global_batch) + " is not divisible by DP=" + std::to_string(l.dp));
  const int64_t local = global_batch / l.dp;
  if (l.micro_batch < 0 || (l.micro_batch > 0 && local % l.micro_batch != 0))
    refuse("micro-batch " + std::to_string(l.micro_batch) + " does not divide the local batch " +
           std::to_string(local) + " (global " + std::to_string(global_batch) + " / DP " + std::to_string(l.dp) + ")");
}

MemoryBreakdown predict_memory(const core::FlowConfig& cfg, const ClusterSpec& cluster, const TrainingAssumptions& a,
                               const Layout& l, int64_t micro_batch) {
  const double params = parameter_split(cfg, a.split_shallow_blocks).per_rank(l.tp);
  MemoryBreakdown m;
  m.weights = params * a.weight_bytes;
  m.gradients = params * a.gradient_bytes;
  m.optimizer = params * (a.master_bytes + a.moment_bytes) / (l.zero1 ? l.dp : 1);
  for (int64_t k = 0; k < cfg.num_blocks; ++k) {
    const int t = tp_width_of_block(cfg, a, k, l.tp);
    const int64_t S = block_sequence_length(cfg, k);
    const double layer = layer_activation_bytes(cfg, a, micro_batch, S, t);
    if (a.recompute_layers) {
      const double input = static_cast<double>(micro_batch) * S * cfg.channels * a.activation_bytes;
      m.activations += cfg.layers_per_block[k] * input + layer;  // the inputs, and one layer's work set per block
    } else {
      m.activations += cfg.layers_per_block[k] * layer;
    }
    m.activations += block_activation_bytes(cfg, a, k, micro_batch);
  }
  m.activations += static_cast<double>(micro_batch) * cfg.txt_size * cfg.txt_dim * a.activation_bytes;  // y
  m.workspace = workspace_bytes(cfg, a, micro_batch, l.tp);
  m.reserved = cluster.reserved_gb * kGB;
  return m;
}

LayoutPrediction predict_layout(const core::FlowConfig& cfg, const ClusterSpec& cluster,
                                const TrainingAssumptions& a, int gpus, int64_t global_batch, const Layout& layout) {
  validate_layout(cfg, cluster, gpus, global_batch, layout);
  LayoutPrediction p;
  p.layout = layout;
  p.local_batch = global_batch / layout.dp;
  const double capacity = cluster.memory_gb * kGB;
  if (layout.micro_batch > 0) {
    p.micro_batch = layout.micro_batch;
  } else {
    p.micro_batch = 1;
    for (int64_t m = p.local_batch; m >= 1; --m)
      if (p.local_batch % m == 0 && predict_memory(cfg, cluster, a, layout, m).total() <= capacity) {
        p.micro_batch = m;
        break;
      }
  }
  p.accumulation = p.local_batch / p.micro_batch;
  p.memory = predict_memory(cfg, cluster, a, layout, p.micro_batch);
  p.fits = p.memory.total() <= capacity;

  // Compute: a split block's FLOPs divide over TP; a replicated (shallow) block runs whole on every TP rank.
  // Tensor parallel: per split layer and micro-batch, two all-reduces of [micro, S, C] activations in forward
  // (after proj and fc2) and two in backward (the input gradients of qkv and fc1), over NVLink, not hidden.
  const int tp = layout.tp, dp = layout.dp;
  const double nvlink = cluster.nvlink_gb_per_s * kGB, network = cluster.network_gbit_per_s / 8 * kGB;
  TimeBreakdown& t = p.time;
  double flops_per_sample = 0;
  for (int64_t k = 0; k < cfg.num_blocks; ++k) {
    const int split = tp_width_of_block(cfg, a, k, tp);
    const int64_t S = block_sequence_length(cfg, k);
    flops_per_sample += cfg.layers_per_block[k] * layer_forward_flops(cfg.channels, S) / split;
    const double bytes = static_cast<double>(p.micro_batch) * S * cfg.channels * a.activation_bytes;
    t.tensor_parallel += 4.0 * cfg.layers_per_block[k] * p.accumulation *
                         ring_time(bytes, split, 1.0, nvlink, cluster.nvlink_latency_us * 1e-6, 1);
  }
  // Recompute runs every layer's forward a second time in backward.
  t.compute = (a.recompute_layers ? 4.0 : 3.0) * flops_per_sample * p.local_batch /
              (cluster.peak_tflops * 1e12 * a.efficiency);

  // Data parallel: the gradients of this rank's parameters, in buckets, over NVLink while the DP group stays
  // in one node. Across nodes NCCL runs one ring per NIC, so a group with k members on each node moves its
  // data over k NICs (all-reduce bus bandwidth ≈ the NIC bandwidth of the node's members, up to NVLink's;
  // NVIDIA/nccl#412). ZeRO-1 reduce-scatters the gradients (half an all-reduce) and all-gathers the updated
  // bf16 weights after the step (counted as not hidden).
  const double params = parameter_split(cfg, a.split_shallow_blocks).per_rank(tp);
  const bool inside_node = tp * dp <= cluster.gpus_per_node;
  const int members_per_node = std::min(dp, cluster.gpus_per_node / tp);
  const double bw = inside_node ? nvlink : std::min(nvlink, members_per_node * network);
  const double latency = (inside_node ? cluster.nvlink_latency_us : cluster.network_latency_us) * 1e-6;
  const double grad_bytes = params * a.gradient_bytes, bucket = a.bucket_mb * 1e6;
  const double factor = layout.zero1 ? 0.5 : 1.0;
  const auto buckets = [&](double bytes) { return static_cast<int64_t>(std::ceil(bytes / bucket)); };
  t.data_parallel = ring_time(grad_bytes, dp, factor, bw, latency, buckets(grad_bytes));
  if (dp > 1) {
    const double hidden = a.dp_overlap * (2.0 / 3.0) * t.compute / p.accumulation;
    const double tail = ring_time(std::min(bucket, grad_bytes), dp, factor, bw, latency, 1);
    t.data_parallel_exposed = std::max(tail, t.data_parallel - hidden);
  }
  if (layout.zero1) {
    const double weight_bytes = params * a.weight_bytes;
    t.parameter_gather = ring_time(weight_bytes, dp, 0.5, bw, latency, buckets(weight_bytes));
  }

  // Optimizer: gradient norm (read g) and AdamW (read g, master, m, v; write master, m, v and the bf16 copy)
  // over this rank's share of the state, at HBM bandwidth.
  const double optimizer_params = params / (layout.zero1 ? dp : 1);
  const double bytes_per_param = 2.0 * a.gradient_bytes + 2.0 * (a.master_bytes + a.moment_bytes) + a.weight_bytes;
  t.optimizer = optimizer_params * bytes_per_param / (cluster.hbm_gb_per_s * kGB);

  const double step = t.step();
  p.images_per_second = static_cast<double>(global_batch) / step;
  p.mfu = train_flops_per_step(cfg, global_batch) / (gpus * cluster.peak_tflops * 1e12 * step);
  return p;
}

Plan plan_layouts(const core::FlowConfig& cfg, const ClusterSpec& cluster, const TrainingAssumptions& a,
                  const PlanRequest& request) {
  Plan plan;
  for (int tp : request.tp_choices) {
    if (tp < 1 || request.gpus % tp != 0) {
      plan.refused.push_back("TP=" + std::to_string(tp) + ": does not divide the " + std::to_string(request.gpus) +
                             " GPUs");
      continue;
    }
    const int dp = request.gpus / tp;
    bool refused = false;
    for (bool zero : request.zero_choices) {
      if (zero && dp == 1 && request.zero_choices.size() > 1) continue;  // ZeRO-1 over one replica is plain DP
      Layout layout{tp, dp, zero, request.micro_batch};
      try {
        plan.layouts.push_back(predict_layout(cfg, cluster, a, request.gpus, request.global_batch, layout));
      } catch (const std::invalid_argument& e) {
        if (!refused) plan.refused.push_back(e.what());
        refused = true;
      }
    }
  }
  std::stable_sort(plan.layouts.begin(), plan.layouts.end(), [](const LayoutPrediction& x, const LayoutPrediction& y) {
    if (x.fits != y.fits) return x.fits;
    if (x.fits) return x.images_per_second > y.images_per_second;
    return x.memory.total() < y.memory.total();
  });
  return plan;
}

}  // namespace starflow::jobs
