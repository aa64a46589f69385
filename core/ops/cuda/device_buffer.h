// DeviceBuffer<T>: an owning, move-only array in GPU memory (cudaMalloc/cudaFree), with blocking host copies
// for setup and tests. Hot paths pass raw pointers to the ops, as the CPU backend does with std::vector.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/ops/cuda/cuda_check.h"

namespace starflow::core::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { allocate(count); }
  explicit DeviceBuffer(std::span<const T> host) {
    allocate(host.size());
    upload(host);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  // A destructor must not throw: a failing cudaFree here (a context already torn down at exit) is ignored.
  ~DeviceBuffer() { release(); }

  // Drops the old contents; the new memory is uninitialised (call zero() when it must start at 0).
  void allocate(size_t count) {
    release();
    if (count == 0) return;
    void* p = nullptr;
    cudaCheck(cudaMalloc(&p, count * sizeof(T)));
    data_ = static_cast<T*>(p);
    size_ = count;
  }
  void zero(cudaStream_t stream = 0) {
    if (size_ != 0) cudaCheck(cudaMemsetAsync(data_, 0, bytes(), stream));
  }
  // Blocking copies of the first host.size() elements (the whole buffer for download()).
  void upload(std::span<const T> host) {
    if (host.size() > size_) throw std::out_of_range("DeviceBuffer::upload: more elements than the buffer holds");
    if (!host.empty()) cudaCheck(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(size_);
    if (size_ != 0) cudaCheck(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost));
    return host;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  bool empty() const { return size_ == 0; }

 private:
  void release() noexcept {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace starflow::core::cuda
