// Causal multi-head attention on the CPU: forward saves the softmax probabilities, backward uses them.
// One OpenMP task per (batch, head). All six matrix products go through one register-blocked kernel (on
// AVX-512 hosts its 16-lane form, attention_avx512.cpp, with the same bits), and each skips the masked upper
// triangle in blocks of rows.
#include "core/ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/small_batch_avx512.h"
#include "core/ops/cpu/vector_math.h"

namespace starflow::core::cpu {
namespace {

// The kernel's accumulators are GCC/Clang vector-extension values: plain C++ arithmetic that is
// compiled to one 256-bit register each (two 128-bit ones in a PORTABLE build). Auto-vectorisation of
// the same loops picked the wrong loop (the reduction, with strided loads) and ran 5× slower.
template <class T>
struct Vector;
template <>
struct Vector<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct Vector<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <class T>
using Vec = typename Vector<T>::type;

// Unaligned, aliasing views of memory (the same definition as the compilers' own __m256_u). Plain
// overloads, not templates: GCC drops alignment attributes of typedefs reached through a template, and
// then emits aligned loads of unaligned rows.
typedef float UnalignedFloats __attribute__((vector_size(32), aligned(4), may_alias));
typedef double UnalignedDoubles __attribute__((vector_size(32), aligned(8), may_alias));
// Vectors pass by reference: by value they would change the ABI of a PORTABLE (non-AVX) build.
inline void load(Vec<float>& v, const float* p) { v = *reinterpret_cast<const UnalignedFloats*>(p); }
inline void load(Vec<double>& v, const double* p) { v = *reinterpret_cast<const UnalignedDoubles*>(p); }
inline void store(float* p, const Vec<float>& v) { *reinterpret_cast<UnalignedFloats*>(p) = v; }
inline void store(double* p, const Vec<double>& v) { *reinterpret_cast<UnalignedDoubles*>(p) = v; }

template <class T>
constexpr int64_t kLanes = 32 / sizeof(T);
constexpr int64_t kVecsPerPass = 2;
// Output columns per kernel pass. Operand copies are padded to whole passes so the kernel never needs
// a tail; the padding is zero and its results are dropped.
template <class T>
constexpr int64_t kColumns = kLanes<T> * kVecsPerPass;
constexpr int64_t kRows = 4;  // rows per block: 4 × 2 accumulators stay in registers

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// out[r][c] = Σ_{k ∈ [k_begin, k_end)} coef(r, k) · mat[k][c] for r < R, c < n_cols (a multiple of
// kColumns), with coef(r, k) = coef[r·coef_row + k·coef_k]. The strides let one kernel read a matrix or
// its transpose as coefficients. Each step is R broadcasts, two loads and 2R independent FMAs.
template <class T, int R>
void rows_times_matrix(T* __restrict out, int64_t ld_out, const T* __restrict coef, int64_t coef_row, int64_t coef_k,
                       const T* __restrict mat, int64_t ld_mat, int64_t k_begin, int64_t k_end, int64_t n_cols) {
  for (int64_t c0 = 0; c0 < n_cols; c0 += kColumns<T>) {
    Vec<T> acc[R][kVecsPerPass];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kVecsPerPass; ++v) acc[r][v] = Vec<T>{};
    for (int64_t k = k_begin; k < k_end; ++k) {
      Vec<T> m[kVecsPerPass];
      for (int v = 0; v < kVecsPerPass; ++v) load(m[v], mat + k * ld_mat + c0 + v * kLanes<T>);
      for (int r = 0; r < R; ++r) {
        const T a = coef[r * coef_row + k * coef_k];
        for (int v = 0; v < kVecsPerPass; ++v) acc[r][v] += a * m[v];
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kVecsPerPass; ++v)
        store(out + r * ld_out + c0 + v * kLanes<T>, acc[r][v]);
  }
}

// rows_times_matrix for any number of rows: blocks of kRows, then single rows. k_end(row0, rows) gives the
// reduction end for a block, k_begin(row0) its start, which is how callers skip the masked triangle.
template <class T, class KBegin, class KEnd>
void block_rows_times_matrix(int64_t n_rows, T* out, int64_t ld_out, const T* coef, int64_t coef_row,
                             int64_t coef_k, const T* mat, int64_t ld_mat, KBegin k_begin, KEnd k_end,
                             int64_t n_cols) {
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512()) {  // 16-lane vectors, the same sums (attention_avx512.cpp)
      int64_t r0 = 0;
      for (; r0 + kRows <= n_rows; r0 += kRows)
        avx512::rows_times_matrix(int(kRows), out + r0 * ld_out, ld_out, coef + r0 * coef_row, coef_row, coef_k, mat,
                                  ld_mat, k_begin(r0), k_end(r0, kRows), n_cols);
      for (; r0 < n_rows; ++r0)
        avx512::rows_times_matrix(1, out + r0 * ld_out, ld_out, coef + r0 * coef_row, coef_row, coef_k, mat, ld_mat,
                                  k_begin(r0), k_end(r0, 1), n_cols);
      return;
    }
  }
#endif
  int64_t r0 = 0;
  for (; r0 + kRows <= n_rows; r0 += kRows)
    rows_times_matrix<T, kRows>(out + r0 * ld_out, ld_out, coef + r0 * coef_row, coef_row, coef_k, mat, ld_mat,
                                k_begin(r0), k_end(r0, kRows), n_cols);
  for (; r0 < n_rows; ++r0)
    rows_times_matrix<T, 1>(out + r0 * ld_out, ld_out, coef + r0 * coef_row, coef_row, coef_k, mat, ld_mat,
                            k_begin(r0), k_end(r0, 1), n_cols);
}

// One head's vectors as the kernel reads or writes them: rows `ld` elements apart.
template <class T>
struct HeadRows {
  T* data;
  int64_t ld;
};

// Per-thread scratch for one (batch, head), allocated once per call and thread. Row-major operands are
// used in place when head_dim is a whole number of kernel passes (64 in every STARFlow config), and
// otherwise copied into zero-padded buffers; transposed operands are always copied. Padding is written
// once and stays zero because only the valid part is ever overwritten.
template <class T>
class HeadScratch {
 public:
  HeadScratch(int64_t S, int64_t head_dim, int n_row_buffers)
      : S_(S), head_dim_(head_dim), dh_padded_(round_up(head_dim, kColumns<T>)),
        keys_padded_(round_up(S, kColumns<T>)), transposed_(static_cast<size_t>(head_dim * keys_padded_), T(0)),
        block_(static_cast<size_t>(kRows * keys_padded_), T(0)) {
    if (dh_padded_ != head_dim_)
      for (int i = 0; i < n_row_buffers; ++i) row_buffers_.emplace_back(static_cast<size_t>(S * dh_padded_), T(0));
  }
  int64_t dh_padded() const { return dh_padded_; }
  int64_t keys_padded() const { return keys_padded_; }
  T* block() { return block_.data(); }  // kRows rows of scores or their gradients

  // src's vectors (rows src_stride apart) as [head_dim, keys_padded], padding columns zero.
  const T* transposed(const T* src, int64_t src_stride) {
    T* dst = transposed_.data();
    for (int64_t j = 0; j < S_; ++j)
      for (int64_t d = 0; d < head_dim_; ++d) dst[d * keys_padded_ + j] = src[j * src_stride + d];
    return transposed_.data();
  }
  // src's vectors readable in whole kernel passes, through row buffer `slot` when head_dim needs padding.
  HeadRows<const T> input(const T* src, int64_t src_stride, int slot) {
    if (row_buffers_.empty()) return {src, src_stride};
    T* buf = row_buffers_[static_cast<size_t>(slot)].data();
    for (int64_t j = 0; j < S_; ++j) std::copy_n(src + j * src_stride, head_dim_, buf + j * dh_padded_);
    return {buf, dh_padded_};
  }
  // Where the kernel writes results destined for dst; finish_output() moves them there if buffered.
  HeadRows<T> output(T* dst, int64_t dst_stride, int slot) {
    if (row_buffers_.empty()) return {dst, dst_stride};
    return {row_buffers_[static_cast<size_t>(slot)].data(), dh_padded_};
  }
  void finish_output(T* dst, int64_t dst_stride, HeadRows<T> written) {
    if (written.data == dst) return;
    for (int64_t j = 0; j < S_; ++j) std::copy_n(written.data + j * written.ld, head_dim_, dst + j * dst_stride);
  }

 private:
  int64_t S_, head_dim_, dh_padded_, keys_padded_;
  std::vector<T> transposed_, block_;
  std::vector<std::vector<T>> row_buffers_;
};

// Waking the thread team costs microseconds; below about this many multiply-adds (a decoding step, a
// unit test) one thread finishes first.
bool worth_threading(int64_t B, int64_t S, int64_t n_head, int64_t head_dim) {
  return B * n_head * S * S * head_dim >= (int64_t(1) << 18);
}

// Reduction ranges for block_rows_times_matrix. Products with P or dS as coefficients stop at a block's
// last diagonal entry (kToDiagonal); products with their transposes start at the block's first row
// (kFromRow). Whatever else a block covers is masked, and zero in P and dS.
constexpr auto kFromZero = [](int64_t) { return int64_t(0); };
constexpr auto kFromRow = [](int64_t r0) { return r0; };
constexpr auto kToDiagonal = [](int64_t r0, int64_t rows) { return r0 + rows; };
inline auto to_fixed(int64_t end) {
  return [end](int64_t, int64_t) { return end; };
}

}  // namespace

template <class T>
void attention_forward(T* out, T* probs, const T* qkv, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                       T scale) {
  const int64_t C = n_head * head_dim, qkv_row = 3 * C;
#pragma omp parallel if (worth_threading(B, S, n_head, head_dim))
  {
    HeadScratch<T> scratch(S, head_dim, 2);
    const int64_t keys_padded = scratch.keys_padded();
    T* scores = scratch.block();
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < n_head; ++h) {
        const T* q = qkv + b * S * qkv_row + h * head_dim;
        T* p = probs + (b * n_head + h) * S * S;
        T* out_head = out + b * S * C + h * head_dim;
        const T* k_t = scratch.transposed(q + C, qkv_row);
        const HeadRows<const T> v = scratch.input(q + 2 * C, qkv_row, 0);
        for (int64_t i0 = 0; i0 < S; i0 += kRows) {
          const int64_t rows = std::min(kRows, S - i0);
          // Scores of this block of queries, keys up to its diagonal rounded up to a whole kernel pass.
          block_rows_times_matrix(rows, scores, keys_padded, q + i0 * qkv_row, qkv_row, int64_t(1), k_t,
                                  keys_padded, kFromZero, to_fixed(head_dim),
                                  std::min(round_up(i0 + rows, kColumns<T>), keys_padded));
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t n = i0 + r + 1;  // query i sees keys 0..i
            const T* s = scores + r * keys_padded;
            T* p_row = p + (i0 + r) * S;
            // Softmax of scale·score; scale > 0, so the max raw score also maximises the scaled one.
            T max_score = s[0];
            for (int64_t j = 0; j < n; ++j) max_score = s[j] > max_score ? s[j] : max_score;
            std::copy(s, s + n, p_row);
            const T sum = exp_shifted_sum(p_row, n, scale, max_score);
            const T inv_sum = T(1) / sum;
            for (int64_t j = 0; j < n; ++j) p_row[j] *= inv_sum;
            std::fill(p_row + n, p_row + S, T(0));
          }
        }
        // O = P·V.
        const HeadRows<T> o = scratch.output(out_head, C, 1);
        block_rows_times_matrix(S, o.data, o.ld, p, S, int64_t(1), v.data, v.ld, kFromZero, kToDiagonal,
                                scratch.dh_padded());
        scratch.finish_output(out_head, C, o);
      }
    }
  }
}

template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, int64_t B, int64_t S,
                        int64_t n_head, int64_t head_dim, T scale) {
  const int64_t C = n_head * head_dim, qkv_row = 3 * C;
#pragma omp parallel if (worth_threading(B, S, n_head, head_dim))
  {
    HeadScratch<T> head(S, head_dim, 6);
    const int64_t keys_padded = head.keys_padded(), dhp = head.dh_padded();
    T* dprobs = head.block();
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < n_head; ++h) {
        const T* q_src = qkv + b * S * qkv_row + h * head_dim;
        const T* do_src = dout + b * S * C + h * head_dim;
        const T* p = probs + (b * n_head + h) * S * S;
        T* dq_dst = dqkv + b * S * qkv_row + h * head_dim;
        // dS = dL/d(q·k), i.e. the softmax backward times scale; zero above the diagonal.
        T* ds = scratch + (b * n_head + h) * S * S;
        const HeadRows<const T> q = head.input(q_src, qkv_row, 0);
        const HeadRows<const T> k = head.input(q_src + C, qkv_row, 1);
        const HeadRows<const T> d_o = head.input(do_src, C, 2);
        const T* v_t = head.transposed(q_src + 2 * C, qkv_row);
        for (int64_t i0 = 0; i0 < S; i0 += kRows) {
          const int64_t rows = std::min(kRows, S - i0);
          // dP = dO·Vᵀ for this block of queries, keys up to the diagonal.
          block_rows_times_matrix(rows, dprobs, keys_padded, do_src + i0 * C, C, int64_t(1), v_t, keys_padded,
                                  kFromZero, to_fixed(head_dim),
                                  std::min(round_up(i0 + rows, kColumns<T>), keys_padded));
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t n = i0 + r + 1;
            const T* dp = dprobs + r * keys_padded;
            const T* p_row = p + (i0 + r) * S;
            T* ds_row = ds + (i0 + r) * S;
            T row_dot = 0;  // Σ_j dP_ij·P_ij: the rank-one part of the softmax Jacobian
#pragma omp simd reduction(+ : row_dot)
            for (int64_t j = 0; j < n; ++j) row_dot += dp[j] * p_row[j];
            for (int64_t j = 0; j < n; ++j) ds_row[j] = scale * p_row[j] * (dp[j] - row_dot);
            std::fill(ds_row + n, ds_row + S, T(0));
          }
        }
        // dQ = dS·K (keys up to the diagonal); dK = dSᵀ·Q and dV = Pᵀ·dO (queries from the diagonal on).
        const HeadRows<T> dq = head.output(dq_dst, qkv_row, 3);
        const HeadRows<T> dk = head.output(dq_dst + C, qkv_row, 4);
        const HeadRows<T> dv = head.output(dq_dst + 2 * C, qkv_row, 5);
        block_rows_times_matrix(S, dq.data, dq.ld, ds, S, int64_t(1), k.data, k.ld, kFromZero, kToDiagonal, dhp);
        block_rows_times_matrix(S, dk.data, dk.ld, ds, int64_t(1), S, q.data, q.ld, kFromRow, to_fixed(S), dhp);
        block_rows_times_matrix(S, dv.data, dv.ld, p, int64_t(1), S, d_o.data, d_o.ld, kFromRow, to_fixed(S), dhp);
        head.finish_output(dq_dst, qkv_row, dq);
        head.finish_output(dq_dst + C, qkv_row, dk);
        head.finish_output(dq_dst + 2 * C, qkv_row, dv);
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, float);
template void attention_forward<double>(double*, double*, const double*, int64_t, int64_t, int64_t, int64_t,
                                        double);
template void attention_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                        int64_t, int64_t, float);
template void attention_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                         int64_t, int64_t, int64_t, double);

}  // namespace starflow::core::cpu
