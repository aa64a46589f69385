// DataParallelOptimizer: plain or ZeRO-1 sharded AdamW.
#include "parallel/data_parallel_optimizer.h"

#include <climits>
#include <stdexcept>
#include <vector>

#include "parallel/mpi_check.h"

namespace starflow::parallel {

std::pair<int64_t, int64_t> DataParallelOptimizer::part(int64_t total, int ranks, int r) {
  // 16-element (64-byte) aligned cuts, like the parameter views.
  const int64_t chunk = ((total + ranks - 1) / ranks + 15) / 16 * 16;
  const int64_t b = std::min(total, chunk * r), e = std::min(total, chunk * (r + 1));
  return {b, e};
}

DataParallelOptimizer::DataParallelOptimizer(MpiCommunicator& dp, int64_t total, core::AdamWConfig cfg, bool zero1)
    : dp_(dp),
      zero1_(zero1 && dp.size() > 1),
      total_(total),
      begin_(zero1_ ? part(total, dp.size(), dp.rank()).first : 0),
      end_(zero1_ ? part(total, dp.size(), dp.rank()).second : total),
      adam_(end_ - begin_, cfg, begin_) {
  if (zero1_ && part(total, dp.size(), 0).second > INT_MAX)
    throw std::invalid_argument("ZeRO-1 part of " + std::to_string(part(total, dp.size(), 0).second) +
                                " elements exceeds one MPI call; use more data-parallel ranks");
}

void DataParallelOptimizer::step(std::span<float> params, std::span<const float> grads, double lr) {
  adam_.step(params, grads, lr);  // over [begin, end): everything without ZeRO-1
  if (!zero1_) return;
  const int n = dp_.size();
  if (total_ > INT_MAX) {
    // Displacements past 2^31 elements do not fit MPI's int: one broadcast per part instead.
    for (int r = 0; r < n; ++r) {
      const auto [b, e] = part(total_, n, r);
      mpiCheck(MPI_Bcast(params.data() + b, static_cast<int>(e - b), MPI_FLOAT, r, dp_.comm()));
    }
    return;
  }
  std::vector<int> counts(n), displs(n);
  for (int r = 0; r < n; ++r) {
    const auto [b, e] = part(total_, n, r);
    counts[r] = static_cast<int>(e - b);
    displs[r] = static_cast<int>(b);
  }
  mpiCheck(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params.data(), counts.data(), displs.data(), MPI_FLOAT,
                          dp_.comm()));
}

}  // namespace starflow::parallel
