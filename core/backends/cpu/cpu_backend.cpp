// The CPU backend's out-of-line members: the decode linear, the sampling steps. The decode hooks are in
// cpu_decoder.cpp.
#include "core/backends/cpu/cpu_backend.h"

#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "core/backends/cpu/cpu_decoder.h"

namespace starflow::core {

template <class T>
CpuBackend<T>::CpuBackend() : tiled_(std::make_unique<cpu_decode::TiledWeights>()) {}
template <class T>
CpuBackend<T>::~CpuBackend() = default;

template <class T>
void CpuBackend<T>::decode_linear(T* out, const T* in, const T* w, const T* b, int64_t M, int64_t K, int64_t N,
                                  cpu::SmallBatchWeights layout) {
  if constexpr (std::is_same_v<T, float>) return cpu::linear_forward_small_batch(out, in, w, b, M, K, N, layout);
  if (layout != cpu::SmallBatchWeights::kRows) throw std::logic_error("tiled decode weights need the float small-batch kernel");
  cpu::linear_forward(out, in, w, b, M, K, N);
}

template <class T>
void CpuBackend<T>::guidance(T* sigma, T* mu, int64_t n, double w) {
  const T wt = T(w);
  for (int64_t i = 0; i < n; ++i) {
    const T sc = sigma[i], su = sigma[n + i], mc = mu[i], mu_u = mu[n + i];
    const T r = std::min(sc / su, T(1));
    const T s = r * r;
    const T denom = T(1) + wt - wt * s;
    const T se = sc / std::sqrt(denom), me = ((T(1) + wt) * mc - wt * s * mu_u) / denom;
    sigma[i] = sigma[n + i] = se;
    mu[i] = mu[n + i] = me;
  }
}

template <class T>
std::pair<double, double> CpuBackend<T>::affine_update(T* x, int64_t x_stride, const T* v, int64_t v_stride,
                                                       const T* sigma, const T* mu, int64_t rows, int64_t len) {
  double diff = 0, norm = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < len; ++i) {
      const int64_t c = r * len + i;
      const T val = v[r * v_stride + i] * sigma[c] + mu[c];
      T& slot = x[r * x_stride + i];
      diff += double(val - slot) * double(val - slot);
      norm += double(val) * double(val);
      slot = val;
    }
  return {diff, norm};
}

template class CpuBackend<float>;
template class CpuBackend<double>;

}  // namespace starflow::core
