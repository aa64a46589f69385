// `starflow train` on GPUs (device: cuda): one GPU per rank (its rank on the node modulo the visible devices),
// the model on the CUDA backend in bf16 with fp32 master weights and moments (or fp32 throughout), its
// tensor-parallel reductions and the gradient buckets on NCCL over the grid's groups, MPI for start-up, the
// host-side statistics, checkpoints and previews. Built only with the CUDA backend and NCCL
// (STARFLOW_HAVE_CUDA_TRAINING).
#pragma once
#include <memory>

#include "jobs/batch_source.h"
#include "jobs/train_config.h"
#include "jobs/trainer.h"
#include "parallel/process_grid.h"

namespace starflow::jobs {

// Throws on every rank alike when a rank has no usable GPU (the error names the ranks).
std::unique_ptr<TrainingRun> make_cuda_training(const TrainConfig& config, parallel::ProcessGrid& grid,
                                                BatchSource& data);

}  // namespace starflow::jobs
