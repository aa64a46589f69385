// The preflight of a training job (`starflow preflight CONFIG.yaml`, and the line before training in the sbatch
// template): every rank measures its node before the allocation's hours go to a job that one bad node would
// slow or stop. Per rank: a float GEMM's rate, a neighbour exchange (rank r sends to r+1 and receives from r−1,
// so a slow link or NIC shows on the ranks beside it), a write + fsync + read-back of the checkpoint directory,
// and an open of the first and the last shard the rank reads in the first epoch; over all ranks, one ring
// all-reduce with its bus bandwidth. Each figure is judged against the expected rate (given, or the median of
// the job's ranks: most nodes of a job are sound), and every rank gets a verdict: OK, slow or failed.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "jobs/train_config.h"

namespace starflow::jobs {

struct PreflightOptions {
  int64_t gemm_size = 1024;      // the GEMM is gemm_size³ (float)
  double expect_gflops = 0;      // the node type's expected GEMM rate; 0: the median of the ranks
  int64_t allreduce_mb = 64;     // the ring all-reduce's message
  int64_t exchange_mb = 16;      // the neighbour exchange's message
  int64_t io_mb = 64;            // bytes written to and read back from the checkpoint directory
  double expect_write_mbs = 0;   // the checkpoint file system's expected write rate per rank; 0: not judged
                                 // (ranks sharing one file system get unequal shares: no median to judge by)
  double slow_fraction = 0.7;    // a figure below this fraction of the expected one is slow (0: never slow)
};

// The options a training config sets (preflight_slow, preflight_expect_gflops); the command line overrides them.
PreflightOptions preflight_options(const TrainConfig& config);

struct PreflightRow {
  int rank = 0;
  std::string host;
  double gemm_gflops = 0, exchange_gbs = 0, write_mbs = 0, read_mbs = 0;
  std::string shards;   // "first, last OK", "synthetic data" or the error
  std::string problem;  // empty: OK; else what was slow or failed
  bool failed = false;
  bool slow = false;
};

struct PreflightReport {
  std::vector<PreflightRow> rows;  // every rank, in rank order (on rank 0; the others get their own row only)
  double allreduce_busbw_gbs = 0;  // the ring all-reduce's bus bandwidth, 2(n−1)/n · bytes / time
  double expect_gflops = 0, expect_exchange_gbs = 0, expect_write_mbs = 0;  // what the figures were judged against
  std::vector<std::string> bad_hosts;  // hosts with a slow or failed rank, sorted, each once
  bool ok() const { return bad_hosts.empty(); }
};

// Collective over comm; never throws for a check that fails on some ranks (it becomes their verdict).
PreflightReport run_preflight(const TrainConfig& config, const PreflightOptions& options, MPI_Comm comm);

// The table rank 0 prints: one line per rank, then the all-reduce and the verdict ("preflight: OK" or
// "preflight: bad hosts: a,b (resubmit with sbatch --exclude=a,b)").
std::string format_preflight(const PreflightReport& report);

}  // namespace starflow::jobs
