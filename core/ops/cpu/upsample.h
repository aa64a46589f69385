// Nearest-neighbour 2× upsampling (each pixel becomes a 2×2 block): the decoder's way up in resolution,
// followed by a 3×3 convolution. Chosen over a transposed convolution because it cannot produce the
// checkerboard artefacts of overlapping strided kernels and reuses conv2d for all learnable work.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in [planes, H, W] → out [planes, 2H, 2W] (=); planes = B·C.
template <class T>
void upsample_nearest2x_forward(T* out, const T* in, int64_t planes, int64_t H, int64_t W);

// din [planes, H, W] = the sum of dout over each 2×2 block (=).
template <class T>
void upsample_nearest2x_backward(T* din, const T* dout, int64_t planes, int64_t H, int64_t W);

}  // namespace starflow::core::cpu
