// Token layout kernels (pure data movement): one thread per element of the image-layout tensor for
// patchify/unpatchify, one per element of the output for the permutation.
#include "core/ops/cuda/tokens.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

// Index of image element (b, c, y, x), given as its flat [B, C, H, W] index, in the token layout.
__device__ __forceinline__ int64_t token_index(int64_t image_index, int64_t C, int64_t H, int64_t W, int64_t p) {
  const int64_t x = image_index % W;
  int64_t rest = image_index / W;
  const int64_t y = rest % H;
  rest /= H;
  const int64_t c = rest % C;
  const int64_t b = rest / C;
  const int64_t h = H / p, w = W / p, D = p * p * C;
  const int64_t token = (y / p) * w + x / p, f = ((y % p) * p + x % p) * C + c;
  return (b * h * w + token) * D + f;
}

template <class T>
__global__ void patchify_kernel(T* out, const T* in, int64_t total, int64_t C, int64_t H, int64_t W, int64_t p,
                                bool inverse) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = token_index(i, C, H, W, p);
    if (inverse)
      out[i] = in[t];
    else
      out[t] = in[i];
  }
}

template <class T>
__global__ void permute_tokens_kernel(T* out, const T* in, int64_t B, int64_t n_tokens, int64_t D, bool flip) {
  const int64_t total = B * n_tokens * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t f = i % D;
    const int64_t t = (i / D) % n_tokens;
    const int64_t b = i / (D * n_tokens);
    const int64_t src_t = flip ? n_tokens - 1 - t : t;
    out[i] = in[(b * n_tokens + src_t) * D + f];
  }
}

}  // namespace

template <class T>
void patchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t stream) {
  const int64_t total = B * C * H * W;
  if (total == 0) return;
  patchify_kernel<T><<<detail::grid_for(total, 256), 256, 0, stream>>>(out, in, total, C, H, W, p, false);
  cudaCheckLaunch();
}

template <class T>
void unpatchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t stream) {
  const int64_t total = B * C * H * W;
  if (total == 0) return;
  patchify_kernel<T><<<detail::grid_for(total, 256), 256, 0, stream>>>(out, in, total, C, H, W, p, true);
  cudaCheckLaunch();
}

template <class T>
void permute_tokens(T* out, const T* in, int64_t B, int64_t T_, int64_t D, bool flip, cudaStream_t stream) {
  const int64_t total = B * T_ * D;
  if (total == 0) return;
  permute_tokens_kernel<T><<<detail::grid_for(total, 256), 256, 0, stream>>>(out, in, B, T_, D, flip);
  cudaCheckLaunch();
}

#define STARFLOW_INSTANTIATE(T)                                                                             \
  template void patchify<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);       \
  template void unpatchify<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);     \
  template void permute_tokens<T>(T*, const T*, int64_t, int64_t, int64_t, bool, cudaStream_t);
STARFLOW_INSTANTIATE(float)
STARFLOW_INSTANTIATE(bf16)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core::cuda
