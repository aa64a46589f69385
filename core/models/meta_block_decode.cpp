// MetaBlock sampling path: the text prefix once, then chunks of image positions against the KV caches.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <type_traits>
#include <utility>

#include "core/models/meta_block.h"
#include "core/ops/cpu/linear.h"
#include "core/ops/cpu/linear_small_batch.h"
#include "core/ops/cpu/rmsnorm.h"

namespace starflow::core {

template <class T>
void MetaBlock<T>::run_cached_layers(const T* P, DecodeState<T>& st, std::vector<cpu::KVCache<T>>& caches, int64_t B,
                                     int64_t n, int64_t pos, const cpu::RopeTable<T>& rope, bool outputs) const {
  const size_t need = static_cast<size_t>(B * n * C_);
  if (st.seq_b.size() < need) st.seq_b.resize(need);
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!outputs && l + 1 == layers_.size()) {
      layers_[l].store_kv(P, caches[l], st.scratch, st.seq_a.data(), B, n, pos, rope);
      return;
    }
    layers_[l].forward_cached(P, caches[l], st.scratch, st.seq_a.data(), st.seq_b.data(), B, n, pos, rope);
    std::swap(st.seq_a, st.seq_b);
  }
}

template <class T>
void MetaBlock<T>::begin_decode(const T* P, DecodeState<T>& st, const T* y, int64_t B,
                                const cpu::RopeTable<T>& rope) const {
  st.batch = B;
  st.caches.resize(layers_.size());
  for (auto& c : st.caches) c.reset(B, layers_[0].n_head, layers_[0].head_dim, L_ + T_);
  if (!conditioned_) return;
  // Samples with the same condition (a class repeated over a grid, guidance's null caption in every row)
  // have the same prefix: it is computed once, for the first of them, and copied.
  const int64_t text = L_ * E_;
  std::vector<int64_t> source(B), distinct;
  std::unordered_map<std::string_view, int64_t> first;
  for (int64_t b = 0; b < B; ++b) {
    const std::string_view bytes(reinterpret_cast<const char*>(y + b * text), sizeof(T) * text);
    const auto [it, fresh] = first.emplace(bytes, b);
    source[b] = it->second;
    if (fresh) distinct.push_back(b);
  }
  const int64_t D = static_cast<int64_t>(distinct.size());
  const T* y_distinct = y;
  if (D < B) {
    st.prefix_y.resize(D * text);
    for (int64_t i = 0; i < D; ++i) std::copy_n(y + distinct[i] * text, text, st.prefix_y.data() + i * text);
    y_distinct = st.prefix_y.data();
  }
  // The prefix runs in groups of a fixed number of samples (as many as the fused decode step takes), each
  // into small caches whose rows are then copied: every sample's keys and values come out of the same
  // kernels whatever the batch size, so samples do not depend on the batch or on its split between threads.
  const int64_t H = layers_[0].n_head, dh = layers_[0].head_dim, cap = L_ + T_;
  const int64_t group = std::max<int64_t>(1, TransformerLayer<T>::kDecodeTeamRows / L_);
  auto copy_prefix = [&](const cpu::KVCache<T>& from_cache, int64_t from_sample, cpu::KVCache<T>& to_cache,
                         int64_t to_sample) {
    const int64_t from_cap = from_cache.capacity;
    for (int64_t h = 0; h < H; ++h) {
      const size_t from = static_cast<size_t>((from_sample * H + h) * from_cap * dh);
      const size_t to = static_cast<size_t>((to_sample * H + h) * cap * dh);
      std::copy_n(from_cache.k.data() + from, L_ * dh, to_cache.k.data() + to);
      std::copy_n(from_cache.v.data() + from, L_ * dh, to_cache.v.data() + to);
    }
  };
  st.prefix_caches.resize(layers_.size());
  st.seq_a.resize(std::min(group, D) * L_ * C_);
  for (int64_t i0 = 0; i0 < D; i0 += group) {
    const int64_t nb = std::min(group, D - i0);
    for (auto& c : st.prefix_caches) c.reset(nb, H, dh, L_);
    decode_linear(st.seq_a.data(), y_distinct + i0 * text, st.scratch.weights(P) + proj_txt_w_, P + proj_txt_b_,
                  nb * L_, E_, C_, st.scratch.layout());
    // The text's outputs are never read, only its keys and values: the last layer stops at storing them.
    run_cached_layers(P, st, st.prefix_caches, nb, L_, 0, rope, /*outputs=*/false);
    for (size_t l = 0; l < layers_.size(); ++l)
      for (int64_t i = 0; i < nb; ++i) copy_prefix(st.prefix_caches[l], i, st.caches[l], distinct[i0 + i]);
  }
  for (int64_t b = 0; b < B; ++b)
    if (source[b] != b)
      for (size_t l = 0; l < layers_.size(); ++l) copy_prefix(st.caches[l], source[b], st.caches[l], b);
}

template <class T>
bool MetaBlock<T>::decodes_as_team(int64_t) const {
  return false;
}

template <class T>
bool MetaBlock<T>::tiles_decode_weights() {
  return false;
}

template <class T>
void MetaBlock<T>::tile_decode_weights(const T*, T*) const {
  throw std::logic_error("tiled decode weights need the float small-batch kernel");
}

template <class T>
bool MetaBlock<T>::decode_chunk_team(const T*, DecodeState<T>&, const T*, int64_t, int64_t, T*, T*,
                                     const cpu::RopeTable<T>&) const {
  return false;
}

#ifdef STARFLOW_SMALL_BATCH_KERNEL
template <>
bool MetaBlock<float>::tiles_decode_weights() {
  return true;
}

template <>
void MetaBlock<float>::tile_decode_weights(const float* P, float* dst) const {
  cpu::tile_small_batch_weight(dst + proj_in_w_, P + proj_in_w_, D_, C_);
  cpu::tile_small_batch_weight(dst + proj_out_w_, P + proj_out_w_, C_, 2 * D_);
  if (conditioned_) cpu::tile_small_batch_weight(dst + proj_txt_w_, P + proj_txt_w_, E_, C_);
  for (const auto& layer : layers_) layer.tile_decode_weights(P, dst);
}

template <>
bool MetaBlock<float>::decodes_as_team(int64_t rows) const {
  for (const auto& layer : layers_)
    if (!layer.can_decode_team(rows)) return false;
  return true;
}

template <>
bool MetaBlock<float>::decode_chunk_team(const float* P, DecodeState<float>& st, const float* inp, int64_t start,
                                         int64_t n, float* sigma, float* mu,
                                         const cpu::RopeTable<float>& rope) const {
  const int64_t B = st.batch, rows = B * n, Mp = cpu::small_batch_padded_rows(rows);
  if (!decodes_as_team(rows)) return false;
  for (const auto& layer : layers_) layer.prepare_decode_team(st.scratch, rows);
  for (auto* v : {&st.seq_a, &st.seq_b})
    if (v->size() < static_cast<size_t>(rows * C_)) v->resize(rows * C_);
  st.o.resize(rows * 2 * D_);
  st.rrms.resize(rows);
  st.xt_io.resize(std::max(C_, D_) * Mp);
  float* xt = st.xt_io.data();
  const float* W = st.scratch.weights(P);
  const cpu::SmallBatchWeights layout = st.scratch.layout();
  cpu::SmallBatchOutput to_emb, to_o;
  to_emb.out = st.seq_a.data();
  to_o.out = st.o.data();
#pragma omp parallel if (decode_team_parallel(rows, C_))
  {
    cpu::small_batch_transpose_team(xt, inp, rows, D_);
    cpu::small_batch_linear_team(to_emb, xt, rows, W + proj_in_w_, P + proj_in_b_, D_, C_, layout);
    float *x = st.seq_a.data(), *y = st.seq_b.data();
    const int64_t shared = st.paired_halves && B % 2 == 0 ? rows / 2 : 0;
    for (size_t l = 0; l < layers_.size(); ++l) {
      layers_[l].decode_team(P, st.caches[l], st.scratch, x, y, B, n, L_ + start, rope, l == 0 ? shared : 0);
      std::swap(x, y);
    }
    if (final_norm_) cpu::rmsnorm_transposed_team(xt, st.rrms.data(), x, P + final_norm_w_, rows, C_, 1e-6f);
    else cpu::small_batch_transpose_team(xt, x, rows, C_);
    cpu::small_batch_linear_team(to_o, xt, rows, W + proj_out_w_, P + proj_out_b_, C_, 2 * D_, layout);
#pragma omp single
    cpu::flow_head_sigma_mu(sigma, mu, st.o.data(), rows, D_, head_);
  }
  return true;
}
#endif

template <class T>
void MetaBlock<T>::decode_chunk(const T* P, DecodeState<T>& st, const T* inp, int64_t start, int64_t n, T* sigma,
                                T* mu, const cpu::RopeTable<T>& rope) const {
  if (decode_chunk_team(P, st, inp, start, n, sigma, mu, rope)) return;
  const int64_t B = st.batch, rows = B * n;
  if (st.seq_a.size() < static_cast<size_t>(rows * C_)) st.seq_a.resize(rows * C_);
  decode_linear(st.seq_a.data(), inp, st.scratch.weights(P) + proj_in_w_, P + proj_in_b_, rows, D_, C_,
                st.scratch.layout());
  run_cached_layers(P, st, st.caches, B, n, L_ + start, rope);
  const T* h = st.seq_a.data();
  if (final_norm_) {
    st.h_norm.resize(rows * C_);
    st.rrms.resize(rows);
    cpu::rmsnorm_forward(st.h_norm.data(), st.rrms.data(), h, P + final_norm_w_, rows, C_, T(1e-6));
    h = st.h_norm.data();
  }
  st.o.resize(rows * 2 * D_);
  decode_linear(st.o.data(), h, st.scratch.weights(P) + proj_out_w_, P + proj_out_b_, rows, C_, 2 * D_,
                st.scratch.layout());
  cpu::flow_head_sigma_mu(sigma, mu, st.o.data(), rows, D_, head_);
}

template bool MetaBlock<double>::decodes_as_team(int64_t) const;
template bool MetaBlock<double>::tiles_decode_weights();
template void MetaBlock<double>::tile_decode_weights(const double*, double*) const;
#ifndef STARFLOW_SMALL_BATCH_KERNEL
template bool MetaBlock<float>::decodes_as_team(int64_t) const;
template bool MetaBlock<float>::tiles_decode_weights();
template void MetaBlock<float>::tile_decode_weights(const float*, float*) const;
#endif
template void MetaBlock<float>::begin_decode(const float*, DecodeState<float>&, const float*, int64_t,
                                             const cpu::RopeTable<float>&) const;
template void MetaBlock<double>::begin_decode(const double*, DecodeState<double>&, const double*, int64_t,
                                              const cpu::RopeTable<double>&) const;
template void MetaBlock<float>::decode_chunk(const float*, DecodeState<float>&, const float*, int64_t, int64_t, float*,
                                             float*, const cpu::RopeTable<float>&) const;
template void MetaBlock<double>::decode_chunk(const double*, DecodeState<double>&, const double*, int64_t, int64_t,
                                              double*, double*, const cpu::RopeTable<double>&) const;

}  // namespace starflow::core
