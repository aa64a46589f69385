// T5Encoder's definitions, included by each backend's instantiation (t5_encoder.cpp for the CPU).
#pragma once
#include <algorithm>
#include <limits>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/io/files.h"
#include "core/models/t5_encoder.h"
#include "core/models/t5_position_bias.h"

namespace starflow::core {

namespace t5_detail {

template <class T>
double to_double(T x) {
  if constexpr (std::is_arithmetic_v<T>) return static_cast<double>(x);
  else return static_cast<double>(static_cast<float>(x));  // bf16 goes through float
}

// n elements of backend memory as host doubles (the trace).
template <class Backend, class T>
std::vector<double> host_copy(const Backend& be, const T* data, int64_t n) {
  std::vector<T> raw(static_cast<size_t>(n));
  be.download(raw.data(), data, n);
  std::vector<double> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = to_double(raw[i]);
  return out;
}

}  // namespace t5_detail

template <class Backend>
T5Encoder<Backend>::T5Encoder(const T5Config& cfg) : cfg_(cfg), be_(std::make_unique<Backend>()) {
  const int64_t D = cfg_.d_model, I = cfg_.inner_dim(), F = cfg_.d_ff;
  // state_dict order (shared.weight's alias stands for the embedding; the loader falls back to shared.weight).
  embed_ = layout_.add("encoder.embed_tokens.weight", {cfg_.vocab_size, D});
  for (int64_t k = 0; k < cfg_.num_layers; ++k) {
    const std::string attn = "encoder.block." + std::to_string(k) + ".layer.0.";
    const std::string ff = "encoder.block." + std::to_string(k) + ".layer.1.";
    BlockParams b;
    b.q = layout_.add(attn + "SelfAttention.q.weight", {I, D});
    b.k = layout_.add(attn + "SelfAttention.k.weight", {I, D});
    b.v = layout_.add(attn + "SelfAttention.v.weight", {I, D});
    b.o = layout_.add(attn + "SelfAttention.o.weight", {D, I});
    if (k == 0)
      relative_bias_ = layout_.add(attn + "SelfAttention.relative_attention_bias.weight",
                                   {cfg_.relative_attention_num_buckets, cfg_.num_heads});
    b.ln0 = layout_.add(attn + "layer_norm.weight", {D});
    if (cfg_.gated) {
      b.wi0 = layout_.add(ff + "DenseReluDense.wi_0.weight", {F, D});
      b.wi1 = layout_.add(ff + "DenseReluDense.wi_1.weight", {F, D});
    } else {
      b.wi0 = layout_.add(ff + "DenseReluDense.wi.weight", {F, D});
    }
    b.wo = layout_.add(ff + "DenseReluDense.wo.weight", {D, F});
    b.ln1 = layout_.add(ff + "layer_norm.weight", {D});
    blocks_.push_back(b);
  }
  final_norm_ = layout_.add("encoder.final_layer_norm.weight", {D});
  Backend::resize(params_, static_cast<size_t>(layout_.total_size()));
  be_->fill(params_.data(), T(0), layout_.total_size());
}

template <class Backend>
T5Encoder<Backend>::T5Encoder(T5Encoder&&) noexcept = default;
template <class Backend>
T5Encoder<Backend>::~T5Encoder() = default;

template <class Backend>
void T5Encoder<Backend>::load_weights(const io::ShardedSafeTensors& checkpoint, const std::string& prefix) {
  for (const ParameterView& view : layout_.views()) {
    std::string name = prefix + view.name;
    if (view.offset == embed_ && !checkpoint.has(name)) {
      name = prefix + "shared.weight";
      if (!checkpoint.has(name))
        io::fail_file(checkpoint.path(), "no tensor '" + prefix + "encoder.embed_tokens.weight' nor '" + name +
                                             "' (the token embedding)");
    }
    T* dst = params_.data() + view.offset;
    if constexpr (Backend::kHostMemory && (std::is_same_v<T, float> || std::is_same_v<T, double>)) {
      // Straight from the mapped file into the parameter buffer: no staging copy of a 263 MB embedding.
      checkpoint.read_into<T>(name, view.shape, std::span<T>(dst, static_cast<size_t>(view.size)));
    } else {
      // Device memory (or a storage type the reader does not produce): one tensor staged through the host.
      const Tensor<float> host = checkpoint.read<float>(name, view.shape);
      std::vector<T> converted(host.data.size());
      for (size_t i = 0; i < converted.size(); ++i) converted[i] = T(host.data[i]);
      be_->upload(dst, converted.data(), view.size);
    }
  }
}

template <class Backend>
void T5Encoder<Backend>::check_ids(const int64_t* ids, int64_t count) const {
  for (int64_t i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      throw std::invalid_argument("T5 encoder: token id " + std::to_string(ids[i]) + " is outside the vocabulary (" +
                                  std::to_string(cfg_.vocab_size) + " rows)");
}

template <class Backend>
int64_t T5Encoder<Backend>::tokens_per_pass(int64_t longest) const {
  const int64_t D = cfg_.d_model, I = cfg_.inner_dim(), F = cfg_.d_ff, H = cfg_.num_heads;
  const int64_t per_token = 4 * D + 4 * I + 2 * F;
  return std::max<int64_t>(longest, (pass_elements_ - H * longest * longest) / per_token);
}

template <class Backend>
void T5Encoder<Backend>::run(const std::vector<int64_t>& lengths, const T* key_mask_add, T* out,
                             T5EncoderTrace* trace) {
  const Backend& be = *be_;
  const int64_t D = cfg_.d_model, I = cfg_.inner_dim(), F = cfg_.d_ff, H = cfg_.num_heads;
  const int64_t G = static_cast<int64_t>(lengths.size());
  int64_t R = 0, longest = 0;
  for (int64_t s : lengths) {
    R += s;
    longest = std::max(longest, s);
  }
  // Rows of one length attend as one batch; mixed lengths attend row by row (probabilities of one row at a time).
  const bool uniform = std::all_of(lengths.begin(), lengths.end(), [&](int64_t s) { return s == longest; });
  const T* P = params_.data();
  for (Buffer* b : {&h_, &x_, &proj_}) Backend::grow(*b, static_cast<size_t>(R * D));
  for (Buffer* b : {&q_, &k_, &v_, &attn_}) Backend::grow(*b, static_cast<size_t>(R * I));
  Backend::grow(ff0_, static_cast<size_t>(R * F));
  if (cfg_.gated) Backend::grow(ff1_, static_cast<size_t>(R * F));
  Backend::grow(probs_, static_cast<size_t>((uniform ? G : 1) * H * longest * longest));
  Backend::grow(rrms_, static_cast<size_t>(R));

  // Block 0's bias [H, s, s] for each length of the pass, built on the host from the current weights.
  const int64_t buckets = cfg_.relative_attention_num_buckets;
  std::vector<T> w_rel(static_cast<size_t>(buckets * H));
  be.download(w_rel.data(), P + relative_bias_, buckets * H);
  std::map<int64_t, int64_t> bias_at;  // length → offset in bias_
  int64_t bias_size = 0;
  for (int64_t s : lengths)
    if (bias_at.emplace(s, bias_size).second) bias_size += H * s * s;
  Backend::grow(bias_, static_cast<size_t>(bias_size));
  for (const auto& [s, offset] : bias_at) {
    const std::vector<T> bias = t5_position_bias(w_rel.data(), buckets, cfg_.relative_attention_max_distance, H, s);
    be.upload(bias_.data() + offset, bias.data(), H * s * s);
  }

  T* h = h_.data();
  T* x = x_.data();
  be.embedding_forward(h, ids_.data(), P + embed_, R, D);
  if (trace) {
    trace->embed = t5_detail::host_copy(be, h, R * D);
    trace->position_bias = t5_detail::host_copy(be, bias_.data(), bias_size);
    trace->attn_probs.clear();
    trace->blocks.clear();
  }
  const double eps = cfg_.layer_norm_epsilon;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockParams& b = blocks_[k];
    const bool first = trace && k == 0;
    be.rmsnorm_gain_forward(x, rrms_.data(), h, P + b.ln0, R, D, eps);
    if (first) trace->block0_ln0 = t5_detail::host_copy(be, x, R * D);
    be.linear_forward(q_.data(), x, P + b.q, nullptr, R, D, I);
    be.linear_forward(k_.data(), x, P + b.k, nullptr, R, D, I);
    be.linear_forward(v_.data(), x, P + b.v, nullptr, R, D, I);
    // Scale 1: T5 folds 1/√d_kv into the initialisation of q.
    if (uniform) {
      be.attention_dense_forward(attn_.data(), probs_.data(), q_.data(), k_.data(), v_.data(), bias_.data(),
                                 key_mask_add, G, longest, H, cfg_.d_kv, 1.0);
      if (trace) trace->attn_probs.push_back(t5_detail::host_copy(be, probs_.data(), G * H * longest * longest));
    } else {
      int64_t row = 0;
      for (int64_t s : lengths) {
        const int64_t at = row * I;
        be.attention_dense_forward(attn_.data() + at, probs_.data(), q_.data() + at, k_.data() + at,
                                   v_.data() + at, bias_.data() + bias_at.at(s), nullptr, 1, s, H, cfg_.d_kv, 1.0);
        row += s;
      }
    }
    be.linear_forward(proj_.data(), attn_.data(), P + b.o, nullptr, R, I, D);
    if (first) trace->block0_attn = t5_detail::host_copy(be, proj_.data(), R * D);
    be.add_bias_residual(h, nullptr, proj_.data(), R, D);
    if (first) trace->block0_after_attn = t5_detail::host_copy(be, h, R * D);

    be.rmsnorm_gain_forward(x, rrms_.data(), h, P + b.ln1, R, D, eps);
    if (first) trace->block0_ln1 = t5_detail::host_copy(be, x, R * D);
    be.linear_forward(ff0_.data(), x, P + b.wi0, nullptr, R, D, F);
    const T* gate = nullptr;
    if (cfg_.gated) {
      be.linear_forward(ff1_.data(), x, P + b.wi1, nullptr, R, D, F);
      gate = ff1_.data();
    }
    be.gated_activation_forward(ff0_.data(), ff0_.data(), gate, R * F, cfg_.activation);
    be.linear_forward(proj_.data(), ff0_.data(), P + b.wo, nullptr, R, F, D);
    if (first) trace->block0_ff = t5_detail::host_copy(be, proj_.data(), R * D);
    be.add_bias_residual(h, nullptr, proj_.data(), R, D);
    if (trace) trace->blocks.push_back(t5_detail::host_copy(be, h, R * D));
  }
  be.rmsnorm_gain_forward(out, rrms_.data(), h, P + final_norm_, R, D, eps);
  if (trace) trace->last_hidden_state = t5_detail::host_copy(be, out, R * D);
}

template <class Backend>
void T5Encoder<Backend>::encode(const int64_t* ids, const int64_t* lengths, int64_t N, int64_t L, T* out) {
  const Backend& be = *be_;
  const int64_t D = cfg_.d_model;
  int64_t longest = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (lengths[r] < 0 || lengths[r] > L)
      throw std::invalid_argument("T5 encoder: row " + std::to_string(r) + " has length " +
                                  std::to_string(lengths[r]) + ", outside [0, " + std::to_string(L) + "]");
    check_ids(ids + r * L, lengths[r]);
    longest = std::max(longest, lengths[r]);
  }
  // Every row's valid tokens back to back, in input order, as many rows per pass as the activation budget allows:
  // the linear layers (nearly all of the work) see one tall matrix whatever the mix of lengths.
  const int64_t budget = tokens_per_pass(longest);
  std::vector<int64_t> pass_rows, pass_lengths, pass_ids;
  auto flush = [&] {
    if (pass_rows.empty()) return;
    const int64_t R = static_cast<int64_t>(pass_ids.size());
    Backend::grow(ids_, pass_ids.size());
    be.upload(ids_.data(), pass_ids.data(), R);
    Backend::grow(final_, static_cast<size_t>(R * D));
    run(pass_lengths, nullptr, final_.data(), nullptr);  // every key valid: no mask
    int64_t at = 0;
    for (size_t g = 0; g < pass_rows.size(); ++g) {
      T* row = out + pass_rows[g] * L * D;
      be.copy(row, final_.data() + at * D, pass_lengths[g] * D);
      be.fill(row + pass_lengths[g] * D, T(0), (L - pass_lengths[g]) * D);
      at += pass_lengths[g];
    }
    pass_rows.clear();
    pass_lengths.clear();
    pass_ids.clear();
  };
  for (int64_t r = 0; r < N; ++r) {
    if (lengths[r] == 0) {
      be.fill(out + r * L * D, T(0), L * D);
      continue;
    }
    if (static_cast<int64_t>(pass_ids.size()) + lengths[r] > budget) flush();
    pass_rows.push_back(r);
    pass_lengths.push_back(lengths[r]);
    pass_ids.insert(pass_ids.end(), ids + r * L, ids + r * L + lengths[r]);
  }
  flush();
}

template <class Backend>
void T5Encoder<Backend>::forward_masked(const int64_t* ids, const int64_t* mask, int64_t N, int64_t L, T* out,
                                        T5EncoderTrace* trace) {
  const Backend& be = *be_;
  const int64_t D = cfg_.d_model;
  check_ids(ids, N * L);
  // finfo(float32).min, as upstream adds in float32 (the lowest finite value, not −inf).
  const T lowest = T(std::numeric_limits<float>::lowest());
  std::vector<T> mask_add(static_cast<size_t>(N * L));
  for (int64_t i = 0; i < N * L; ++i) mask_add[i] = mask[i] != 0 ? T(0) : lowest;
  Backend::grow(mask_add_, mask_add.size());
  be.upload(mask_add_.data(), mask_add.data(), N * L);
  Backend::grow(ids_, static_cast<size_t>(N * L));
  be.upload(ids_.data(), ids, N * L);
  run(std::vector<int64_t>(static_cast<size_t>(N), L), mask_add_.data(), out, trace);
  // STARFlow's mask multiplication: padded positions exactly zero.
  for (int64_t i = 0; i < N * L; ++i)
    if (mask[i] == 0) be.fill(out + i * D, T(0), D);
}

template <class Backend>
T5Encoder<Backend> load_t5_encoder(const std::string& folder) {
  T5Encoder<Backend> model(T5Config::from_file(folder + "/config.json"));
  model.load_weights(io::ShardedSafeTensors::open(folder));
  return model;
}

}  // namespace starflow::core
