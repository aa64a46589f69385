// Told during backward when a parameter's gradient is final, so that data parallelism can start reducing
// it while backward goes on (parallel/gradient_buckets.h). Core stays free of MPI: it only reports.
#pragma once
#include <cstdint>

namespace starflow::core {

class GradientReadyObserver {
 public:
  virtual ~GradientReadyObserver() = default;
  // offset: the parameter's offset in the flat buffers (ParameterView::offset). Each parameter is reported
  // once per backward, in the same order on every rank.
  virtual void gradient_ready(int64_t offset) = 0;
};

}  // namespace starflow::core
