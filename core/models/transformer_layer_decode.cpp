// The fused decode step of a transformer layer (float, AVX2, no TP): one OpenMP parallel region runs the
// whole layer as work-sharing steps separated only by the barriers the data flow needs, instead of a
// fork/join per op with the small ops serial in between. Token-by-token decoding calls a layer 512 times
// per image batch on config A with ~12M multiply-adds each, so the per-op overheads were a third of the
// time. Every intermediate that feeds a linear is written transposed ([K, Mp], the small-batch kernel's
// input): the LayerNorms write it directly, attention writes its output that way, and fc1 writes GELU
// of its output that way, so fc2 reads it without a transpose. Results do not depend on the thread
// count (each element is computed by one thread, in a fixed order).
#include <algorithm>

#include "core/models/transformer_layer.h"
#include "core/ops/cpu/layernorm.h"
#include "core/ops/cpu/linear_small_batch.h"

namespace starflow::core {

#ifdef STARFLOW_SMALL_BATCH_KERNEL
template <>
void TransformerLayer<float>::tile_decode_weights(const float* P, float* dst) const {
  // The shapes decode_linear and decode_team run them with (this rank's part under TP).
  cpu::tile_small_batch_weight(dst + p.qkv_w, P + p.qkv_w, C, 3 * inner());
  cpu::tile_small_batch_weight(dst + p.proj_w, P + p.proj_w, inner(), C);
  cpu::tile_small_batch_weight(dst + p.fc1_w, P + p.fc1_w, C, hidden);
  cpu::tile_small_batch_weight(dst + p.fc2_w, P + p.fc2_w, hidden, C);
}

template <>
bool TransformerLayer<float>::can_decode_team(int64_t rows) const {
  return !(tp && tp->size() > 1) && rows <= kDecodeTeamRows && head_dim % 8 == 0;
}

template <>
void TransformerLayer<float>::prepare_decode_team(DecodeScratch<float>& s, int64_t rows) const {
  const int64_t Mp = cpu::small_batch_padded_rows(rows);
  s.resize(rows, C);
  s.xt_in.resize(C * Mp);
  s.xt_attn.resize(inner() * Mp);
  s.xt_hidden.resize(hidden * Mp);
}

template <>
void TransformerLayer<float>::decode_team(const float* P, cpu::KVCache<float>& cache, DecodeScratch<float>& s,
                                          const float* x, float* out, int64_t B, int64_t n, int64_t start,
                                          const cpu::RopeTable<float>& rope, int64_t shared_rows) const {
  const int64_t rows = B * n, I = inner();
  const int64_t qkv_rows = shared_rows > 0 ? shared_rows : rows;
  float* qkv = s.qkv.data();
  float* mid = s.mid.data();
  float* xt_in = s.xt_in.data();
  float* xt_attn = s.xt_attn.data();
  float* xt_hidden = s.xt_hidden.data();
  const float eps = float(kLayerNormEps), scale = attention_scale<float>(head_dim);
  const float* W = s.weights(P);
  const cpu::SmallBatchWeights layout = s.layout();
  cpu::SmallBatchOutput to_qkv, to_mid, to_hidden, to_out;
  to_qkv.out = qkv;
  to_mid.out = mid;
  to_mid.residual = x;
  to_hidden.out_t = xt_hidden;
  to_hidden.gelu = true;
  to_out.out = out;
  to_out.residual = mid;
  cpu::layernorm_transposed_team(xt_in, s.mean.data(), s.rstd.data(), x, P + p.ln1_w, P + p.ln1_b, qkv_rows, C,
                                 eps);
  cpu::small_batch_linear_team(to_qkv, xt_in, qkv_rows, W + p.qkv_w, P + p.qkv_b, C, 3 * I, layout);
  if (shared_rows > 0) {  // the second half's input rows equal the first's: so do their q, k and v
#pragma omp for schedule(static)
    for (int64_t r = 0; r < shared_rows; ++r)
      std::copy(qkv + r * 3 * I, qkv + (r + 1) * 3 * I, qkv + (shared_rows + r) * 3 * I);
  }
  cpu::attention_cached_team(xt_attn, cache, qkv, B, n, start, scale, rope);
  cpu::small_batch_linear_team(to_mid, xt_attn, rows, W + p.proj_w, P + p.proj_b, I, C, layout);
  cpu::layernorm_transposed_team(xt_in, s.mean.data(), s.rstd.data(), mid, P + p.ln2_w, P + p.ln2_b, rows, C, eps);
  cpu::small_batch_linear_team(to_hidden, xt_in, rows, W + p.fc1_w, P + p.fc1_b, C, hidden, layout);
  cpu::small_batch_linear_team(to_out, xt_hidden, rows, W + p.fc2_w, P + p.fc2_b, hidden, C, layout);
}

template <>
void TransformerLayer<float>::forward_cached_team(const float* P, cpu::KVCache<float>& cache, DecodeScratch<float>& s,
                                                  const float* x, float* out, int64_t B, int64_t n, int64_t start,
                                                  const cpu::RopeTable<float>& rope) const {
  prepare_decode_team(s, B * n);
#pragma omp parallel if (decode_team_parallel(B * n, C))
  decode_team(P, cache, s, x, out, B, n, start, rope, 0);
}
#endif

}  // namespace starflow::core
