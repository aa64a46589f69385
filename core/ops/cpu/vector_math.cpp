// libmvec-backed elementwise math (compiled with -ffast-math; nothing here tests for NaN or infinity).
#include "core/ops/cpu/vector_math.h"

#include <cmath>

namespace starflow::core::cpu {

template <class T>
T exp_shifted_sum(T* x, int64_t n, T scale, T shift) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(scale * (x[i] - shift));
    sum += x[i];
  }
  return sum;
}

template float exp_shifted_sum<float>(float*, int64_t, float, float);
template double exp_shifted_sum<double>(double*, int64_t, double, double);

}  // namespace starflow::core::cpu
