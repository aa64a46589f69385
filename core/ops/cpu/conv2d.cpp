// conv2d forward/backward, the forward by tiles of output rows, the backward one image at a time, spread over
// the OpenMP threads. Two engines: im2col into a per-thread buffer + one gemm against the weight viewed as
// [Cout, Cin·k·k] (backward recomputes the im2col rather than keeping it: it is k² times the input and cheap
// to rebuild); and direct shifted-row loops when Cout is tiny, where the gemm degenerates to a matrix-vector
// product and building the column matrix costs more than the arithmetic.
#include "core/ops/cpu/conv2d.h"

#include <algorithm>
#include <vector>

#include "core/ops/cpu/gemm.h"

namespace starflow::core::cpu {

namespace {

// Below this many multiply-adds a fork/join costs more than the convolution.
constexpr int64_t kParallelWork = 256 * 1024;

// The batch is cut into at most this many chunks for the dweight partial sums. The cut depends only on
// the batch size, never on the thread count, which keeps gradients bit-identical for any OMP_NUM_THREADS.
constexpr int64_t kMaxWeightChunks = 16;

// Output pixels per tile of the forward gemm engine (whole rows, at least one). At the SD VAE's layers (`starflow
// bench conv`) tiles of 64 to 4096 pixels ran equally fast within the noise on one core (OpenBLAS packs its
// panels anyway); 256 keeps the column matrix small (≤ 4.7 MB at 512 channels) and gives a 32×32 image 4 tiles.
constexpr int64_t kTilePixels = 256;

// The direct engine takes convolutions with at most this many output channels and rows at least this
// long (an image's last layer, e.g. 32→1 at 32×32: 5× faster than im2col + gemm, whose column matrix
// costs as much to build as the whole product when Cout is 1). With short rows or many outputs the gemm
// wins, even for a single input channel (measured on the autoencoder's layers, one core).
constexpr int64_t kDirectMaxOutChannels = 4;
constexpr int64_t kDirectMinRow = 16;

// A 1×1 stride-1 unpadded convolution is a plain matrix product with the image itself as the column
// matrix: no copy needed.
bool is_pointwise(const Conv2dShape& s) {
  return s.kernel == 1 && s.stride == 1 && s.padding_top() == 0 && s.padding_left() == 0 && s.padding_bottom() == 0 &&
         s.padding_right() == 0;
}
bool is_direct(const Conv2dShape& s) {
  return !is_pointwise(s) && s.out_channels <= kDirectMaxOutChannels && s.out_width() >= kDirectMinRow;
}

// A per-thread buffer of at least n elements (contents unspecified), one per SLOT, kept between calls:
// a fresh multi-megabyte vector per call is a fresh mmap, and its page faults cost ~3% of a step.
template <int SLOT, class T>
T* thread_scratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// floor(a / b) for b > 0 and any sign of a.
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The outputs o in [lo, hi) whose tap o·stride − pad + offset lands inside [0, size): hoisting this out of
// the inner loops leaves them branch-free (and vectorisable for stride 1).
struct Range {
  int64_t lo, hi;
};
Range valid_outputs(int64_t offset, int64_t pad, int64_t size, int64_t out_size, const Conv2dShape& s) {
  const int64_t shift = offset - pad;  // input index = o·stride + shift
  const int64_t lo = std::max<int64_t>(0, floor_div(-shift + s.stride - 1, s.stride));
  const int64_t hi = std::min(out_size, floor_div(size - 1 - shift, s.stride) + 1);
  return {lo, std::max(lo, hi)};
}

// The output rows [oy0, oy1) of the column matrix: col [(c·k + ky)·k + kx, (oy − oy0)·Wout + ox] =
// in[c, oy·stride − pad_top + ky, ox·stride − pad_left + kx], 0 outside the image.
template <class T>
void im2col(T* col, const T* in, const Conv2dShape& s, int64_t oy0, int64_t oy1) {
  const int64_t k = s.kernel, H = s.height, W = s.width, Ho = s.out_height(), Wo = s.out_width();
  const int64_t pt = s.padding_top(), pl = s.padding_left(), n = (oy1 - oy0) * Wo;
  for (int64_t c = 0; c < s.in_channels; ++c) {
    const T* plane = in + c * H * W;
    for (int64_t ky = 0; ky < k; ++ky) {
      const Range full = valid_outputs(ky, pt, H, Ho, s);
      const Range ry{std::clamp(full.lo, oy0, oy1), std::clamp(full.hi, oy0, oy1)};
      for (int64_t kx = 0; kx < k; ++kx) {
        const Range rx = valid_outputs(kx, pl, W, Wo, s);
        T* row = col + ((c * k + ky) * k + kx) * n;  // output row oy starts at row + (oy − oy0)·Wo
        std::fill(row, row + (ry.lo - oy0) * Wo, T(0));
        for (int64_t oy = ry.lo; oy < ry.hi; ++oy) {
          const T* src = plane + (oy * s.stride - pt + ky) * W + (kx - pl);
          T* dst = row + (oy - oy0) * Wo;
          std::fill(dst, dst + rx.lo, T(0));
          if (s.stride == 1) {
            for (int64_t ox = rx.lo; ox < rx.hi; ++ox) dst[ox] = src[ox];
          } else {
            for (int64_t ox = rx.lo; ox < rx.hi; ++ox) dst[ox] = src[ox * s.stride];
          }
          std::fill(dst + rx.hi, dst + Wo, T(0));
        }
        std::fill(row + (ry.hi - oy0) * Wo, row + n, T(0));
      }
    }
  }
}

template <class T>
void im2col(T* col, const T* in, const Conv2dShape& s) {
  im2col(col, in, s, 0, s.out_height());
}

// The adjoint of im2col: din[c, iy, ix] += every col entry that was read from it.
template <class T>
void col2im_add(T* din, const T* col, const Conv2dShape& s) {
  const int64_t k = s.kernel, H = s.height, W = s.width, Ho = s.out_height(), Wo = s.out_width();
  const int64_t pt = s.padding_top(), pl = s.padding_left();
  for (int64_t c = 0; c < s.in_channels; ++c) {
    T* plane = din + c * H * W;
    for (int64_t ky = 0; ky < k; ++ky) {
      const Range ry = valid_outputs(ky, pt, H, Ho, s);
      for (int64_t kx = 0; kx < k; ++kx) {
        const Range rx = valid_outputs(kx, pl, W, Wo, s);
        const T* row = col + ((c * k + ky) * k + kx) * Ho * Wo;
        for (int64_t oy = ry.lo; oy < ry.hi; ++oy) {
          T* dst = plane + (oy * s.stride - pt + ky) * W + (kx - pl);
          const T* src = row + oy * Wo;
          if (s.stride == 1) {
            for (int64_t ox = rx.lo; ox < rx.hi; ++ox) dst[ox] += src[ox];
          } else {
            for (int64_t ox = rx.lo; ox < rx.hi; ++ox) dst[ox * s.stride] += src[ox];
          }
        }
      }
    }
  }
}

// Direct convolution of one image: y[o] (bias already in place) += Σ_{c,ky,kx} w · shifted x[c].
// STRIDE is a template parameter so the common stride-1 rows compile to contiguous vector loads (0: any
// stride, read from s at run time).
template <int64_t STRIDE, class T>
void direct_forward(T* y, const T* x, const T* weight, const Conv2dShape& s) {
  const int64_t k = s.kernel, H = s.height, W = s.width, Ho = s.out_height(), Wo = s.out_width();
  const int64_t pt = s.padding_top(), pl = s.padding_left();
  const int64_t stride = STRIDE > 0 ? STRIDE : s.stride;
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t ky = 0; ky < k; ++ky) {
        const Range ry = valid_outputs(ky, pt, H, Ho, s);
        for (int64_t kx = 0; kx < k; ++kx) {
          const Range rx = valid_outputs(kx, pl, W, Wo, s);
          const T w = weight[((o * s.in_channels + c) * k + ky) * k + kx];
          for (int64_t oy = ry.lo; oy < ry.hi; ++oy) {
            const T* src = x + (c * H + oy * stride - pt + ky) * W + (kx - pl);
            T* dst = y + (o * Ho + oy) * Wo;
#pragma omp simd
            for (int64_t ox = rx.lo; ox < rx.hi; ++ox) dst[ox] += w * src[ox * stride];
          }
        }
      }
}

// Direct backward of one image: dw (+=, when non-null) gets Σ dout·shifted x, dx (+=, when non-null)
// gets w·dout scattered back along the same taps.
template <int64_t STRIDE, class T>
void direct_backward(T* dx, T* dw, const T* g, const T* x, const T* weight, const Conv2dShape& s) {
  const int64_t k = s.kernel, H = s.height, W = s.width, Ho = s.out_height(), Wo = s.out_width();
  const int64_t pt = s.padding_top(), pl = s.padding_left();
  const int64_t stride = STRIDE > 0 ? STRIDE : s.stride;
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t ky = 0; ky < k; ++ky) {
        const Range ry = valid_outputs(ky, pt, H, Ho, s);
        for (int64_t kx = 0; kx < k; ++kx) {
          const Range rx = valid_outputs(kx, pl, W, Wo, s);
          const int64_t wi = ((o * s.in_channels + c) * k + ky) * k + kx;
          const T w = weight[wi];
          T acc = T(0);
          for (int64_t oy = ry.lo; oy < ry.hi; ++oy) {
            const int64_t in_offset = (c * H + oy * stride - pt + ky) * W + (kx - pl);
            const T* gy = g + (o * Ho + oy) * Wo;
            if (dw != nullptr) {
              const T* src = x + in_offset;
#pragma omp simd reduction(+ : acc)
              for (int64_t ox = rx.lo; ox < rx.hi; ++ox) acc += gy[ox] * src[ox * stride];
            }
            if (dx != nullptr) {
              T* dst = dx + in_offset;
#pragma omp simd
              for (int64_t ox = rx.lo; ox < rx.hi; ++ox) dst[ox * stride] += w * gy[ox];
            }
          }
          if (dw != nullptr) dw[wi] += acc;
        }
      }
}

}  // namespace

template <class T>
void conv2d_forward(T* out, const T* in, const T* weight, const T* bias, const Conv2dShape& s) {
  const int64_t K = s.in_channels * s.kernel * s.kernel, Ho = s.out_height(), Wo = s.out_width(), P = Ho * Wo;
  const int64_t in_image = s.in_channels * s.height * s.width, out_image = s.out_channels * P;
  const bool pointwise = is_pointwise(s), direct = is_direct(s);
  // The gemm engine works on tiles of whole output rows, (image, tile) pairs spread over the threads: a single
  // large image keeps every core busy, and the column matrix of one tile stays small where the whole image's
  // would not (128 channels at 256×256: 300 MB). The tiling depends only on the shape, never on the thread
  // count, so the results do not either.
  const int64_t tile_rows = direct ? Ho : std::clamp<int64_t>(kTilePixels / std::max<int64_t>(Wo, 1), 1, Ho);
  const int64_t tiles = (Ho + tile_rows - 1) / tile_rows;
#pragma omp parallel if (s.batch * s.out_channels * K * P > kParallelWork)
  {
    T* col = pointwise || direct ? nullptr : thread_scratch<0, T>(K * tile_rows * Wo);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < s.batch * tiles; ++item) {
      const int64_t b = item / tiles, oy0 = item % tiles * tile_rows, oy1 = std::min(Ho, oy0 + tile_rows);
      const int64_t p0 = oy0 * Wo, n = (oy1 - oy0) * Wo;
      const T* x = in + b * in_image;
      T* y = out + b * out_image;
      // Both engines accumulate onto y, seeded with the bias: one pass fewer over y than adding it after.
      for (int64_t o = 0; o < s.out_channels; ++o)
        std::fill(y + o * P + p0, y + o * P + p0 + n, bias != nullptr ? bias[o] : T(0));
      if (direct) {
        if (s.stride == 1) direct_forward<1>(y, x, weight, s);
        else if (s.stride == 2) direct_forward<2>(y, x, weight, s);
        else direct_forward<0>(y, x, weight, s);
        continue;
      }
      if (!pointwise) im2col(col, x, s, oy0, oy1);
      gemm<T>(false, false, s.out_channels, n, K, T(1), weight, K, pointwise ? x + p0 : col, pointwise ? P : n, T(1),
              y + p0, P);
    }
  }
}

template <class T>
void conv2d_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     const Conv2dShape& s, bool accumulate_din) {
  const int64_t K = s.in_channels * s.kernel * s.kernel, P = s.out_height() * s.out_width();
  const int64_t in_image = s.in_channels * s.height * s.width, out_image = s.out_channels * P;
  const int64_t Cout = s.out_channels;
  const bool pointwise = is_pointwise(s), direct = is_direct(s);
  const bool parallel = s.batch * Cout * K * P > kParallelWork;

  // dbias[o] += Σ_{b,p} dout[b, o, p], in double, one channel per iteration: order fixed per channel.
  if (dbias != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t o = 0; o < Cout; ++o) {
      double acc = 0.0;
      for (int64_t b = 0; b < s.batch; ++b) {
        const T* g = dout + b * out_image + o * P;
        for (int64_t p = 0; p < P; ++p) acc += static_cast<double>(g[p]);
      }
      dbias[o] += static_cast<T>(acc);
    }
  }
  if (dweight == nullptr && din == nullptr) return;

  const int64_t chunks = std::min(s.batch, kMaxWeightChunks);
  T* partial = dweight != nullptr ? thread_scratch<2, T>(chunks * Cout * K) : nullptr;
  if (partial != nullptr) std::fill(partial, partial + chunks * Cout * K, T(0));
#pragma omp parallel if (parallel)
  {
    const bool need_col = !pointwise && !direct;
    T* col = need_col && dweight != nullptr ? thread_scratch<0, T>(K * P) : nullptr;
    T* dcol = need_col && din != nullptr ? thread_scratch<1, T>(K * P) : nullptr;
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t b0 = chunk * s.batch / chunks, b1 = (chunk + 1) * s.batch / chunks;
      T* dw = dweight != nullptr ? partial + chunk * Cout * K : nullptr;
      for (int64_t b = b0; b < b1; ++b) {
        const T* x = in + b * in_image;
        const T* g = dout + b * out_image;
        T* dx = din != nullptr ? din + b * in_image : nullptr;
        if (direct) {
          if (dx != nullptr && !accumulate_din) std::fill(dx, dx + in_image, T(0));
          if (s.stride == 1) direct_backward<1>(dx, dw, g, x, weight, s);
          else if (s.stride == 2) direct_backward<2>(dx, dw, g, x, weight, s);
          else direct_backward<0>(dx, dw, g, x, weight, s);
          continue;
        }
        if (dw != nullptr) {
          // dW [Cout, K] += g [Cout, P] · colᵀ [P, K]
          if (!pointwise) im2col(col, x, s);
          gemm<T>(false, true, Cout, K, P, T(1), g, P, pointwise ? x : col, P, T(1), dw, K);
        }
        if (dx != nullptr) {
          // dcol [K, P] = Wᵀ [K, Cout] · g [Cout, P], then scattered back onto the image.
          if (pointwise) {
            gemm<T>(true, false, K, P, Cout, T(1), weight, K, g, P, accumulate_din ? T(1) : T(0), dx, P);
          } else {
            gemm<T>(true, false, K, P, Cout, T(1), weight, K, g, P, T(0), dcol, P);
            if (!accumulate_din) std::fill(dx, dx + in_image, T(0));
            col2im_add(dx, dcol, s);
          }
        }
      }
    }
  }
  if (dweight == nullptr) return;
  const int64_t n = Cout * K;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < n; ++i) {
    T acc = T(0);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) acc += partial[chunk * n + i];
    dweight[i] += acc;
  }
}

template void conv2d_forward<float>(float*, const float*, const float*, const float*, const Conv2dShape&);
template void conv2d_forward<double>(double*, const double*, const double*, const double*, const Conv2dShape&);
template void conv2d_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                     const Conv2dShape&, bool);
template void conv2d_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                      const Conv2dShape&, bool);

}  // namespace starflow::core::cpu
