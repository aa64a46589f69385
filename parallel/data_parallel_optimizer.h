// AdamW across data-parallel ranks, optionally with ZeRO-1: each DP rank keeps the AdamW moments of one
// contiguous part of the flat buffer only, updates that part, and the ranks all-gather the updated weights.
// The arithmetic per element is the plain optimizer's, so ZeRO-1 gives the same weights as plain DP.
//
// The state lives in the backend's memory and is fp32 whatever the model's scalar: the moments, and, when the
// model computes in a lower precision (bf16 on the GPU), the fp32 master weights, which the update writes and
// copies back into the model's weights (the mixed-precision recipe of the official code and Megatron).
#pragma once
#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/optim/adamw.h"
#include "parallel/mpi_check.h"
#include "parallel/mpi_communicator.h"

namespace starflow::parallel {

// The part [begin, end) of DP rank r when `total` elements are split over `ranks`: 16-element (64-byte)
// aligned cuts, like the parameter views.
std::pair<int64_t, int64_t> zero1_part(int64_t total, int ranks, int r);

// Every rank's part of `params` (host memory) from its owner: MPI_Allgatherv in place, or one broadcast per part
// when displacements exceed MPI's int.
void all_gather_parts(MpiCommunicator& dp, float* params, int64_t total);

template <class Backend>
class DataParallelOptimizer {
 public:
  using T = typename Backend::Scalar;
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  // Whether the model's weights are a lower-precision copy of fp32 master weights held here.
  static constexpr bool kMaster = !std::is_same_v<T, float>;

  DataParallelOptimizer(const Backend& be, MpiCommunicator& dp, int64_t total, core::AdamWConfig cfg, bool zero1)
      : be_(be),
        dp_(dp),
        cfg_(cfg),
        zero1_(zero1 && dp.size() > 1),
        total_(total),
        begin_(zero1_ ? zero1_part(total, dp.size(), dp.rank()).first : 0),
        end_(zero1_ ? zero1_part(total, dp.size(), dp.rank()).second : total) {
    if (zero1_ && kMaster)
      throw std::invalid_argument("zero1 is not available with bf16 weights yet (their all-gather runs on the "
                                  "host communicator); set zero1: false");
    if (zero1_ && !Backend::kHostMemory)
      throw std::invalid_argument("zero1 is not available on the " + std::string(Backend::kName) +
                                  " device yet; set zero1: false");
    if (zero1_ && zero1_part(total, dp.size(), 0).second > INT_MAX)
      throw std::invalid_argument("ZeRO-1 part of " + std::to_string(zero1_part(total, dp.size(), 0).second) +
                                  " elements exceeds one MPI call; use more data-parallel ranks");
    Backend::resize(m_, static_cast<size_t>(end_ - begin_));
    Backend::resize(v_, static_cast<size_t>(end_ - begin_));
    be_.zero(m_.data(), end_ - begin_);
    be_.zero(v_.data(), end_ - begin_);
    if constexpr (kMaster) Backend::resize(master_, static_cast<size_t>(total));
  }

  // The model's current weights become the fp32 master (after initialisation or loading); nothing to do when
  // the weights are fp32 themselves.
  void take_weights(const T* params) {
    if constexpr (kMaster) be_.widen(master_.data(), params, total_);
  }
  // The fp32 weights the optimizer updates: the master, or the model's own buffer.
  float* weights(T* params) {
    if constexpr (kMaster) return master_.data();
    else return params;
  }
  const float* weights(const T* params) const {
    if constexpr (kMaster) return master_.data();
    else return params;
  }

  // Flat elements [from, total) form a second parameter group with its own AdamW settings and learning rate
  // (the learnable self-denoiser's own optimizer, as the official trainer has it); step() takes its lr.
  void set_second_group(int64_t from, core::AdamWConfig cfg) {
    second_from_ = from;
    second_cfg_ = cfg;
  }
  int64_t second_group() const { return second_from_ < 0 ? total_ : second_from_; }

  // One optimizer step on the (already DP-averaged) gradients; afterwards every DP rank holds all weights.
  void step(T* params, const T* grads, double lr, double second_lr = 0) {
    ++steps_;
    const int64_t split = std::clamp(second_group(), begin_, end_);
    update(params, grads, begin_, split, cfg_, lr);
    update(params, grads, split, end_, second_cfg_, second_lr);
    if constexpr (Backend::kHostMemory && !kMaster)
      if (zero1_) all_gather_parts(dp_, params, total_);
  }

  bool zero1() const { return zero1_; }
  // The flat range whose moments this rank holds ([0, total) without ZeRO-1); moment j is flat element begin + j.
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }
  Buffer<float>& first_moment() { return m_; }
  Buffer<float>& second_moment() { return v_; }
  const Buffer<float>& first_moment() const { return m_; }
  const Buffer<float>& second_moment() const { return v_; }
  const core::AdamWConfig& config() const { return cfg_; }

 private:
  // AdamW on flat elements [a, b) of this rank's range.
  void update(T* params, const T* grads, int64_t a, int64_t b, const core::AdamWConfig& cfg, double lr) {
    if (b <= a) return;
    be_.adamw_update(weights(params) + a, m_.data() + (a - begin_), v_.data() + (a - begin_), grads + a, b - a, cfg,
                     lr, steps_, kMaster ? params + a : nullptr);
  }

  const Backend& be_;
  MpiCommunicator& dp_;
  core::AdamWConfig cfg_, second_cfg_;
  int64_t second_from_ = -1;
  bool zero1_;
  int64_t total_, begin_, end_;
  int64_t steps_ = 0;
  Buffer<float> m_, v_, master_;
};

}  // namespace starflow::parallel
