// Moving a model's parameters and results between backends: the flat parameter buffers of two models of one
// config share one layout, so a transfer is one conversion of the whole buffer (to another scalar type on the
// way: double, float, bf16).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "core/models/starflow_model.h"

namespace starflow::core {

template <class To, class From>
To convert_scalar(From x) {
  if constexpr (std::is_arithmetic_v<To> && std::is_arithmetic_v<From>) return static_cast<To>(x);
  else return To(static_cast<float>(x));  // bf16 on either side goes through fp32
}

// n elements of a backend's buffer, on the host, as U.
template <class U, class Backend>
std::vector<U> to_host(const Backend& be, const typename Backend::Scalar* data, int64_t n) {
  std::vector<typename Backend::Scalar> raw(static_cast<size_t>(n));
  be.download(raw.data(), data, n);
  if constexpr (std::is_same_v<U, typename Backend::Scalar>) {
    return raw;
  } else {
    std::vector<U> out(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) out[i] = convert_scalar<U>(raw[i]);
    return out;
  }
}

// Host values into a backend's buffer (converted to its scalar).
template <class Backend, class U>
void from_host(const Backend& be, typename Backend::Scalar* dst, const U* host, int64_t n) {
  using T = typename Backend::Scalar;
  if constexpr (std::is_same_v<U, T>) {
    be.upload(dst, host, n);
  } else {
    std::vector<T> converted(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) converted[i] = convert_scalar<T>(host[i]);
    be.upload(dst, converted.data(), n);
  }
}

template <class To, class From>
void copy_parameters(const FlowModel<From>& from, FlowModel<To>& to) {
  const int64_t n = from.layout().total_size();
  if (to.layout().total_size() != n || !(from.config().to_official_json() == to.config().to_official_json()))
    throw std::invalid_argument("copy_parameters: the two models have different configs or layouts");
  const auto host = to_host<typename From::Scalar>(from.backend(), from.parameters().data(), n);
  from_host(to.backend(), to.parameters().data(), host.data(), n);
}

}  // namespace starflow::core
