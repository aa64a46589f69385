// The small steps the model code and the trainer run between the dense ops, on the GPU: strided row copies (the
// [text; image] interleave, gathers and scatters), fills, scaling, the EMA update, the row-parallel epilogue (bias after the reduce, then the
// residual), the SOS shift and its backward, the loss's reductions, the KV-cache store, and sampling's guidance
// and affine update. Their CPU twins are CpuBackend's members (core/backends/cpu/cpu_backend.h), with the same
// arguments plus the stream; T is float or bf16 storage, arithmetic in fp32, reductions in double.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "core/ops/cuda/attention_cached.h"

namespace starflow::core::cuda {

// count blocks of `length` elements, from src + i·src_stride to dst + i·dst_stride (src_stride 0 broadcasts).
template <class T>
void copy_strided(T* dst, int64_t dst_stride, const T* src, int64_t src_stride, int64_t count, int64_t length,
                  cudaStream_t stream = 0);
template <class T>
void fill(T* dst, float value, int64_t n, cudaStream_t stream = 0);
// out [rows, C] = (out + bias) + residual (bias null: out + residual).
template <class T>
void add_bias_residual(T* out, const T* bias, const T* residual, int64_t rows, int64_t C, cudaStream_t stream = 0);
// y += a·x.
template <class T>
void axpy(T* y, float a, const T* x, int64_t n, cudaStream_t stream = 0);
// out = x / d.
template <class T>
void divide(T* out, const T* x, float d, int64_t n, cudaStream_t stream = 0);
// x *= s (averaging gradients over data-parallel ranks, clipping).
template <class T>
void scale(T* x, float s, int64_t n, cudaStream_t stream = 0);
// ema = d·ema + (1 − d)·p on fp32 state (the weights' exponential moving average).
void ema_update(float* ema, const float* p, float d, int64_t n, cudaStream_t stream = 0);
// out = x − step·g.
template <class T>
void step_against(T* out, const T* x, const T* g, float step, int64_t n, cudaStream_t stream = 0);
// inp[b, 0] = sos, inp[b, t] = v[b, t − 1] (tokens of D).
template <class T>
void sos_shift(T* inp, const T* sos, const T* v, int64_t B, int64_t tokens, int64_t D, cudaStream_t stream = 0);
// dv[b, t − 1] += dinp[b, t]; dsos += Σ_b dinp[b, 0] (dsos may be null; the sum in sample order).
template <class T>
void sos_shift_backward(T* dv, T* dsos, const T* dinp, int64_t B, int64_t tokens, int64_t D, cudaStream_t stream = 0);
// Σx and Σx² over n elements in double, added to `start`; waits for the stream (the result goes to the host).
// The partial sums run in a fixed order: the same bits on every run.
template <class T>
double sum(const T* x, int64_t n, double start, cudaStream_t stream = 0);
template <class T>
double sum_squares(const T* x, int64_t n, double start, cudaStream_t stream = 0);
// Writes the keys and values of n new positions (qkv [B, n, (q_heads + 2·n_head)·dh], RoPE applied to k) into
// the cache at positions start..start+n−1, without attending (core/ops/cpu/attention_cached.h; q_heads 0: as
// many as the cache's KV heads).
template <class T>
void attention_cached_store(DeviceKVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                            int64_t q_heads = 0, cudaStream_t stream = 0);
// STARFlow guidance for rows [0, half) against [half, 2·half) (core/backends/cpu/cpu_backend.h).
template <class T>
void guidance(T* sigma, T* mu, int64_t n, float w, cudaStream_t stream = 0);
// x[r·x_stride + i] = v[r·v_stride + i]·σ + μ for r < rows, i < len; returns Σ(new − old)² and Σ new² in
// double (waits for the stream).
template <class T>
std::pair<double, double> affine_update(T* x, int64_t x_stride, const T* v, int64_t v_stride, const T* sigma,
                                        const T* mu, int64_t rows, int64_t len, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
