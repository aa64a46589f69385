// 2-D convolution, NCHW, PyTorch weight layout [Cout, Cin, k, k]: the building block of the autoencoders (ours
// and the SD VAE, whose downsampler pads only right and bottom: Conv2dShape's per-side padding). Computed as
// im2col + gemm, each gemm on one core: the forward over tiles of output rows of every image (one 256×256 image
// still feeds every core), the backward image by image.
#pragma once
#include <cstdint>

#include "core/ops/conv2d_shape.h"

namespace starflow::core::cpu {

using core::Conv2dShape;

// in [B, Cin, H, W], weight [Cout, Cin, k, k], bias [Cout] or nullptr; out [B, Cout, Hout, Wout] (=).
template <class T>
void conv2d_forward(T* out, const T* in, const T* weight, const T* bias, const Conv2dShape& s);

// dout [B, Cout, Hout, Wout]. Accumulates dweight and dbias (+=), writes din (=, or += when
// accumulate_din); each of the three is skipped when nullptr. The dweight sum runs over fixed chunks of
// the batch in a fixed order, so the result does not depend on the number of threads.
template <class T>
void conv2d_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     const Conv2dShape& s, bool accumulate_din = false);

}  // namespace starflow::core::cpu
