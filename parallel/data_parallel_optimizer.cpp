// The ZeRO-1 partition and the all-gather of the updated parts (DataParallelOptimizer, host memory).
#include "parallel/data_parallel_optimizer.h"

#include <algorithm>
#include <vector>

namespace starflow::parallel {

std::pair<int64_t, int64_t> zero1_part(int64_t total, int ranks, int r) {
  const int64_t chunk = ((total + ranks - 1) / ranks + 15) / 16 * 16;
  const int64_t b = std::min(total, chunk * r), e = std::min(total, chunk * (r + 1));
  return {b, e};
}

void all_gather_parts(MpiCommunicator& dp, float* params, int64_t total) {
  const int n = dp.size();
  if (total > INT_MAX) {
    for (int r = 0; r < n; ++r) {
      const auto [b, e] = zero1_part(total, n, r);
      mpiCheck(MPI_Bcast(params + b, static_cast<int>(e - b), MPI_FLOAT, r, dp.comm()));
    }
    return;
  }
  std::vector<int> counts(n), displs(n);
  for (int r = 0; r < n; ++r) {
    const auto [b, e] = zero1_part(total, n, r);
    counts[r] = static_cast<int>(e - b);
    displs[r] = static_cast<int>(b);
  }
  mpiCheck(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params, counts.data(), displs.data(), MPI_FLOAT,
                          dp.comm()));
}

}  // namespace starflow::parallel
