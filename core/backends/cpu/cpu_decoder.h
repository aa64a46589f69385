// The CPU backend's decode fast paths (behind MetaBlock's decode interface, through CpuBackend's hooks):
//  - the decode linears' weights in the small-batch kernel's tile layout, kept per model between sampling calls
//    and refreshed per block when the parameters' version changed;
//  - the text prefix in fixed groups of distinct conditions, copied to every sample that shares one, so that a
//    sample's keys and values depend neither on the batch nor on its split between threads;
//  - the fused decode step (float, AVX2, no TP): a block's whole token step — embedding, every layer, final
//    norm, proj_out, head — in one OpenMP parallel region of team ops, with the inputs of the linears kept
//    transposed (core/ops/cpu/linear_small_batch.h);
//  - the split of sequential decoding into groups of whole samples, one per thread.
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/ops/cpu/linear_small_batch.h"

namespace starflow::core::cpu_decode {

// Rows up to which a layer runs as one fused region (a token step of up to 64 samples × 1 position).
constexpr int64_t kTeamRows = 64;
// Rows of one sample group in sequential decoding: one 16-row panel of the small-batch kernel (guidance on 16
// images: 8 samples × 2 rows per thread). Fewer rows run the kernel below its FMA throughput; more make each
// thread's KV caches outgrow the caches (64 images: 16-row groups 6.5 ms per image, 32-row groups 7 ms, one
// team 8 ms).
constexpr int64_t kGroupRows = 16;
// With the lane-tile kernel (AVX-512 hosts) 8-row groups run at full vector width too: a batch with fewer
// 16-row groups than threads (16 images on 2 threads) is split into 8-row groups instead of running as one
// team, whose ~20 barriers per token step idled ~12% of the time.
constexpr int64_t kLaneGroupRows = 8;

// The tiled copy of a model's parameters (float only; untouched for double).
struct TiledWeights {
  std::mutex mutex;
  std::vector<float> data;
  std::vector<uint64_t> version;  // per block: the parameters' version its tiles were written from
  cpu::SmallBatchWeights layout = cpu::SmallBatchWeights::kTiles;  // the host ISA's (cpu::decode_tile_layout)
};

// A second thread pays for a decode region above ~100k multiply-adds per layer (config A: 3M per sample row).
inline bool team_parallel(int64_t rows, int64_t C) { return rows * C * C > (1 << 14); }

}  // namespace starflow::core::cpu_decode
