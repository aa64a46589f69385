// The CUDA instantiations of BasicTrainer and the communicators they train over (cuda_training.h).
#include "jobs/cuda/cuda_training.h"

#include <cuda_bf16.h>

#include "core/backends/cuda/cuda_backend.h"
#include "jobs/trainer_impl.h"
#include "parallel/error_agreement.h"
#include "parallel/nccl_communicator.h"

namespace starflow::jobs {

template class BasicTrainer<core::CudaBackend<float>>;
template class BasicTrainer<core::CudaBackend<__nv_bfloat16>>;

namespace {

// The device, then the NCCL communicators (which need it), then the trainer (which needs them): in member order.
template <class T>
class CudaTraining final : public TrainingRun {
 public:
  CudaTraining(const TrainConfig& config, parallel::ProcessGrid& grid, BatchSource& data)
      : device_(select_device(grid)),
        tp_(grid.tp_size() > 1 ? std::make_unique<parallel::NcclCommunicator>(grid.tp().comm()) : nullptr),
        dp_(grid.dp_size() > 1 ? std::make_unique<parallel::NcclCommunicator>(grid.dp().comm()) : nullptr),
        trainer_(config, grid, data, tp_.get(), dp_.get()) {}

  std::string resume_if_possible() override { return trainer_.resume_if_possible(); }
  void load_initial_weights(const std::string& path) override { trainer_.load_initial_weights(path); }
  void run(int64_t stop_at, const std::function<bool()>& should_stop) override { trainer_.run(stop_at, should_stop); }
  std::string write_checkpoint() override { return trainer_.write_checkpoint(); }
  int64_t step() const override { return trainer_.step(); }
  int64_t skipped_steps() const override { return trainer_.skipped_steps(); }
  int64_t parameter_count() const override { return trainer_.parameter_count(); }
  const std::vector<StepMetrics>& history() const override { return trainer_.history(); }
  const std::vector<CheckpointTiming>& checkpoint_timings() const override { return trainer_.checkpoint_timings(); }
  void set_heldout(HeldoutSet set) override { trainer_.set_heldout(std::move(set)); }
  double evaluate() override { return trainer_.evaluate(); }

 private:
  // A rank without a GPU fails every rank with one message, before any collective could wait for it.
  static int select_device(parallel::ProcessGrid& grid) {
    int device = -1;
    std::string error;
    try {
      device = parallel::select_local_device(grid.world().comm());
    } catch (const std::exception& e) {
      error = std::string("device cuda: no usable GPU: ") + e.what();
    }
    parallel::agree_on_error(grid.world().comm(), error);
    return device;
  }

  int device_;
  std::unique_ptr<parallel::NcclCommunicator> tp_, dp_;
  BasicTrainer<core::CudaBackend<T>> trainer_;
};

}  // namespace

std::unique_ptr<TrainingRun> make_cuda_training(const TrainConfig& config, parallel::ProcessGrid& grid,
                                                BatchSource& data) {
  if (config.effective_precision() == "bf16")
    return std::make_unique<CudaTraining<__nv_bfloat16>>(config, grid, data);
  return std::make_unique<CudaTraining<float>>(config, grid, data);
}

}  // namespace starflow::jobs
