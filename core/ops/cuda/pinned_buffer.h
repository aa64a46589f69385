// PinnedBuffer<T>: an owning, move-only array in page-locked host memory (cudaMallocHost/cudaFreeHost), the
// CUDA backend's HostBuffer. Device-to-host copies into it run at the link's full rate and truly asynchronously
// (into pageable memory the driver stages them through a bounce buffer), which is what the trainer's
// checkpoint snapshot needs. resize() keeps the allocation when the size is unchanged and drops the contents
// otherwise, like DeviceBuffer::allocate.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "core/ops/cuda/cuda_check.h"

namespace starflow::core::cuda {

template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~PinnedBuffer() { release(); }

  void resize(size_t count) {
    if (count == size_) return;
    release();
    if (count == 0) return;
    void* p = nullptr;
    cudaCheck(cudaMallocHost(&p, count * sizeof(T)));
    data_ = static_cast<T*>(p);
    size_ = count;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  void release() noexcept {
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace starflow::core::cuda
