// The training job on 1..3 ranks: resume is bit-exact (N steps, stop, resume for M more = N+M straight),
// data-parallel training equals one rank with the same global batch, and preview grids are written by rank 0
// every sample_every steps.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/io/png_io.h"
#include "jobs/preprocess_job.h"
#include "jobs/synthetic_latents.h"
#include "jobs/trainer.h"
#include "tests/mpi/mpi_test_util.h"

using namespace starflow;
namespace fs = std::filesystem;

namespace {


jobs::TrainConfig tiny_config(const std::string& dir) {
  jobs::TrainConfig c = jobs::TrainConfig::from_yaml(R"(
channel_size: 2
img_size: 4
channels: 40
head_dim: 20
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 5
noise_std: 0.1
lr: 0.003
warmup_steps: 2
steps: 6
batch_size: 12
drop_label: 0.2
grad_clip: 1.0
ema: 0.9
seed: 5
log_every: 100
)", "tiny.yaml");
  c.output_dir = dir;
  return c;
}

}  // namespace

TEST(Train, ResumeIsBitExact) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string dir = mpi_test::shared_dir("train_resume");
  parallel::ProcessGrid comm(MPI_COMM_WORLD, 1);

  jobs::TrainConfig straight = tiny_config(dir + "/straight");
  jobs::SyntheticLatents d1(2, 4, 4, straight.seed, straight.batch_size, rank, size);
  jobs::Trainer a(straight, comm, d1);
  a.run();

  jobs::TrainConfig split = tiny_config(dir + "/split");
  {
    jobs::SyntheticLatents d2(2, 4, 4, split.seed, split.batch_size, rank, size);
    jobs::Trainer first(split, comm, d2);
    EXPECT_EQ(first.resume_if_possible(), "");
    first.run(/*stop_at=*/3);
    EXPECT_EQ(first.step(), 3);
  }
  jobs::SyntheticLatents d3(2, 4, 4, split.seed, split.batch_size, rank, size);
  jobs::Trainer second(split, comm, d3);
  EXPECT_NE(second.resume_if_possible(), "");
  EXPECT_EQ(second.step(), 3);
  second.run();
  EXPECT_EQ(second.step(), 6);
  EXPECT_TRUE(second.model().parameters() == a.model().parameters()) << "weights differ after resume";
  ASSERT_EQ(second.history().size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(second.history()[i].loss, a.history()[3 + i].loss) << "step " << 4 + i;
  // Training moved the weights, and the loss is finite.
  EXPECT_TRUE(std::isfinite(a.history().back().loss));
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) fs::remove_all(dir);
}

TEST(Train, DataParallelEqualsOneRankWithTheSameGlobalBatch) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string dir = mpi_test::shared_dir("train_dp");
  jobs::TrainConfig cfg = tiny_config(dir + "/dp");
  cfg.steps = 3;
  cfg.drop_label = 0;  // the dropout draw is per rank; the comparison needs the same conditions
  cfg.noise_std = 0;   // likewise the noise draw
  parallel::ProcessGrid world(MPI_COMM_WORLD, 1);
  jobs::SyntheticLatents d(2, 4, 4, cfg.seed, cfg.batch_size, rank, size);
  jobs::Trainer dp(cfg, world, d);
  dp.run();

  jobs::TrainConfig one_cfg = cfg;
  one_cfg.output_dir = dir + "/one_rank" + std::to_string(rank);
  parallel::ProcessGrid self(MPI_COMM_SELF, 1);
  jobs::SyntheticLatents d1(2, 4, 4, cfg.seed, cfg.batch_size, 0, 1);
  jobs::Trainer one(one_cfg, self, d1);
  one.run();
  const auto& p = dp.model().parameters();
  const auto& q = one.model().parameters();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < p.size(); ++i) worst = std::max(worst, double(std::abs(p[i] - q[i]))), scale = std::max(scale, double(std::abs(q[i])));
  EXPECT_LT(worst, 1e-5 * scale) << "DP=" << size << " vs one rank";
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(dp.history()[i].loss, one.history()[i].loss, 1e-5);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) fs::remove_all(dir);
}

// Synthetic latents as a Gaussian posterior's means with σ = 0.3 (what shards with /latent_logvar give).
class PosteriorLatents final : public jobs::BatchSource {
 public:
  PosteriorLatents(uint64_t seed, int64_t batch, int rank, int size) : inner_(2, 4, 4, seed, batch, rank, size) {}
  jobs::TrainBatch next() override {
    jobs::TrainBatch b = inner_.next();
    b.latent_std.assign(b.latents.size(), 0.3f);
    return b;
  }
  nlohmann::json cursor() const override { return inner_.cursor(); }
  void restore(const nlohmann::json& c) override { inner_.restore(c); }
  int64_t num_classes() const override { return inner_.num_classes(); }

 private:
  jobs::SyntheticLatents inner_;
};

// The posterior draw is keyed by the sample's place in the run: data parallelism over any number of ranks
// draws what one rank draws, and the draw happens (the losses differ from the means').
TEST(Train, PosteriorDrawsDoNotDependOnTheLayout) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string dir = mpi_test::shared_dir("train_posterior");
  jobs::TrainConfig cfg = tiny_config(dir + "/dp");
  cfg.steps = 3;
  cfg.drop_label = 0;
  cfg.noise_std = 0;
  parallel::ProcessGrid world(MPI_COMM_WORLD, 1);
  PosteriorLatents d(cfg.seed, cfg.batch_size, rank, size);
  jobs::Trainer dp(cfg, world, d);
  dp.run();

  jobs::TrainConfig one_cfg = cfg;
  one_cfg.output_dir = dir + "/one_rank" + std::to_string(rank);
  parallel::ProcessGrid self(MPI_COMM_SELF, 1);
  PosteriorLatents d1(cfg.seed, cfg.batch_size, 0, 1);
  jobs::Trainer one(one_cfg, self, d1);
  one.run();
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(dp.history()[i].loss, one.history()[i].loss, 1e-5);

  one_cfg.output_dir = dir + "/means" + std::to_string(rank);
  jobs::SyntheticLatents means(2, 4, 4, cfg.seed, cfg.batch_size, 0, 1);
  jobs::Trainer plain(one_cfg, self, means);
  plain.run(1);
  EXPECT_GT(std::abs(plain.history()[0].loss - one.history()[0].loss), 1e-3);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) fs::remove_all(dir);
}

TEST(Train, PreviewGridsEverySampleEverySteps) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string dir = mpi_test::shared_dir("train_preview");
  jobs::TrainConfig c = jobs::TrainConfig::from_yaml(R"(
channel_size: 4
img_size: 8
channels: 40
head_dim: 20
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 4
lr: 0.003
warmup_steps: 1
steps: 5
batch_size: 12
sample_every: 2
cfg: 2
seed: 9
log_every: 100
autoencoder: )" + jobs::default_autoencoder("fashion-mnist") + "\n",
                                                     "preview.yaml");
  c.output_dir = dir + "/run";
  parallel::ProcessGrid comm(MPI_COMM_WORLD, 1);
  jobs::SyntheticLatents data(4, 8, 3, c.seed, c.batch_size, rank, size);
  jobs::Trainer trainer(c, comm, data);
  trainer.run(/*stop_at=*/4);
  const std::vector<float> weights4 = trainer.model().parameters();
  trainer.run();
  EXPECT_EQ(trainer.step(), 5);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    // Steps 2 and 4 of 5, nothing else.
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(c.output_dir + "/samples")) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"step_00000002.png", "step_00000004.png"}));
    // One row per class (3) of 8 samples: 32-px gray tiles with 2-px borders.
    const data::Image grid = data::read_png(c.output_dir + "/samples/step_00000004.png", data::ColorMode::kGray);
    EXPECT_EQ(grid.width, 8 * 32 + 9 * 2);
    EXPECT_EQ(grid.height, 3 * 32 + 4 * 2);
    // The tiles hold pictures, not the border's flat gray.
    int64_t off_border = 0;
    for (uint8_t p : grid.pixels) off_border += p != 128;
    EXPECT_GT(off_border, grid.width * grid.height / 2);
    // The grid is the step-4 weights' samples: the same weights through a fresh PreviewGrid give the same
    // bytes, and the weights of step 2 gave a different grid.
    auto bytes = [](const std::string& path) {
      std::ifstream in(path, std::ios::binary);
      return std::vector<char>(std::istreambuf_iterator<char>(in), {});
    };
    jobs::TrainConfig again = c;
    again.output_dir = dir + "/again";
    jobs::PreviewGrid preview(again);
    const std::string path = preview.write(4, weights4);
    EXPECT_EQ(path, dir + "/again/samples/step_00000004.png");
    EXPECT_EQ(bytes(path), bytes(c.output_dir + "/samples/step_00000004.png"));
    EXPECT_NE(bytes(c.output_dir + "/samples/step_00000002.png"), bytes(c.output_dir + "/samples/step_00000004.png"));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) fs::remove_all(dir);
}
