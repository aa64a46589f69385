// The training job over TP × DP grids: ZeRO-1 gives the weights of plain data parallelism; TP 2 × DP 2 on 4
// ranks trains, and its checkpoint loads at TP 1 / DP 1 and at TP 2 / DP 1 with the same loss on the same
// batch (resharding); TP 2 training equals one process; layouts that cannot be formed are refused.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/io/model_weights.h"
#include "data/io/png_io.h"
#include "jobs/checkpoint.h"
#include "jobs/preprocess_job.h"
#include "jobs/synthetic_latents.h"
#include "jobs/trainer.h"
#include "parallel/gradient_buckets.h"
#include "parallel/process_grid.h"
#include "tests/mpi/mpi_test_util.h"

using namespace starflow;
using starflow::mpi_test::shared_dir;
using starflow::mpi_test::world_rank;
using starflow::mpi_test::world_size;
namespace fs = std::filesystem;

namespace {



// 4 heads, class-conditional; no noise and no label drop so that every layout sees the same batches.
jobs::TrainConfig config(const std::string& out, int tp) {
  jobs::TrainConfig c = jobs::TrainConfig::from_yaml(R"(
channel_size: 2
img_size: 4
channels: 80
head_dim: 20
blocks: 2
layers_per_block: [1, 2]
txt_size: 1
txt_dim: 5
noise_std: 0
drop_label: 0
lr: 0.003
warmup_steps: 1
steps: 3
batch_size: 4
grad_clip: 1.0
ema: 0.9
seed: 9
log_every: 100
bucket_mb: 1
)", "parallel.yaml");
  c.output_dir = out;
  c.tp = tp;
  return c;
}

// The loss of a trainer's model on a fixed batch (collective over its TP group).
double fixed_batch_loss(jobs::Trainer& t) {
  const auto& m = t.model().config();
  const int64_t B = 4, n = B * m.in_channels * m.img_size * m.img_size;
  jobs::SyntheticLatents data(m.in_channels, m.img_size, m.txt_dim - 1, 1234, B, 0, 1);
  jobs::TrainBatch batch = data.next();
  std::vector<float> y(B * m.txt_dim, 0.f);
  for (int64_t b = 0; b < B; ++b) y[b * m.txt_dim + batch.labels[b]] = 1.f;
  EXPECT_EQ(static_cast<int64_t>(batch.latents.size()), n);
  return t.model().forward(batch.latents.data(), y.data(), B, 1e-4).total;
}

}  // namespace

TEST(ParallelTraining, Zero1EqualsPlainDataParallel) {
  const std::string dir = shared_dir("ptrain_zero");
  parallel::ProcessGrid grid(MPI_COMM_WORLD, 1);
  jobs::TrainConfig plain = config(dir + "/plain", 1), zero = config(dir + "/zero", 1);
  zero.zero1 = true;
  plain.batch_size = zero.batch_size = 2 * grid.dp_size();
  jobs::SyntheticLatents d1(2, 4, 4, plain.seed, plain.batch_size, grid.dp_rank(), grid.dp_size());
  jobs::SyntheticLatents d2(2, 4, 4, zero.seed, zero.batch_size, grid.dp_rank(), grid.dp_size());
  jobs::Trainer a(plain, grid, d1), b(zero, grid, d2);
  a.run();
  b.run();
  // Same gradients, same per-element arithmetic: the same bits.
  EXPECT_TRUE(a.model().parameters() == b.model().parameters()) << "ZeRO-1 weights differ from plain DP";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.history()[i].loss, b.history()[i].loss);
  // Resume from ZeRO-1's sharded moments continues exactly too.
  jobs::SyntheticLatents d3(2, 4, 4, zero.seed, zero.batch_size, grid.dp_rank(), grid.dp_size());
  jobs::TrainConfig more = zero;
  more.steps = 4;
  jobs::Trainer c(more, grid, d3);
  EXPECT_NE(c.resume_if_possible(), "");
  jobs::SyntheticLatents d4(2, 4, 4, plain.seed, plain.batch_size, grid.dp_rank(), grid.dp_size());
  jobs::TrainConfig more_plain = plain;
  more_plain.steps = 4;
  jobs::Trainer e(more_plain, grid, d4);
  EXPECT_NE(e.resume_if_possible(), "");
  c.run();
  e.run();
  EXPECT_TRUE(c.model().parameters() == e.model().parameters()) << "after resume";
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST(ParallelTraining, TP2TrainingEqualsOneProcess) {
  if (world_size() != 2) GTEST_SKIP() << "runs on exactly 2 ranks";
  const std::string dir = shared_dir("ptrain_tp2");
  parallel::ProcessGrid self(MPI_COMM_SELF, 1);
  parallel::ProcessGrid grid(MPI_COMM_WORLD, 2);
  // The default layers, then the official switches: the gated MLP (gate and up split like fc1, down like fc2),
  // RMSNorm pre-norms, post-norms, no biases, hf-style RoPE.
  // Then grouped-query attention (6 query heads of 20 over 2 KV heads: width 120 on C = 80) with QK-norm.
  for (const int switches : {0, 1, 2}) {
    auto with_switches = [&](jobs::TrainConfig c) {
      if (switches == 1) {
        c.model.use_swiglu = c.model.use_post_norm = c.model.hf_style_rope = true;
        c.model.use_bias = false;
        c.model.norm_type = core::NormType::kRmsNorm;
      } else if (switches == 2) {
        c.model.attention_heads = 6;
        c.model.kv_heads = 2;
        c.model.use_qk_norm = true;
      }
      return c;
    };
    const std::string tag = switches ? " (switches " + std::to_string(switches) + ")" : "",
                      suffix = "_sw" + std::to_string(switches);
    const jobs::TrainConfig one_cfg = with_switches(config(dir + "/one" + std::to_string(world_rank()) + suffix, 1));
    jobs::SyntheticLatents d1(2, 4, 4, one_cfg.seed, one_cfg.batch_size, 0, 1);
    jobs::Trainer one(one_cfg, self, d1);
    one.run();
    for (const bool shallow : {false, true}) {  // the deep block split, then every block
      jobs::TrainConfig cfg = with_switches(config(dir + (shallow ? "/tp_all" : "/tp") + suffix, 2));
      cfg.tp_shallow = shallow;
      jobs::SyntheticLatents d(2, 4, 4, cfg.seed, cfg.batch_size, 0, 1);
      jobs::Trainer tp(cfg, grid, d);
      tp.run();
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(tp.history()[i].loss, one.history()[i].loss, 1e-5 * std::abs(one.history()[i].loss))
            << "step " << i + 1 << (shallow ? " (all blocks split)" : "") << tag;
        EXPECT_NEAR(tp.history()[i].grad_norm, one.history()[i].grad_norm, 1e-4 * one.history()[i].grad_norm) << tag;
      }
      EXPECT_NEAR(fixed_batch_loss(tp), fixed_batch_loss(one), 1e-4) << tag;
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST(ParallelTraining, TP2xDP2CheckpointReshardsToTP1AndTP2) {
  if (world_size() != 4) GTEST_SKIP() << "runs on exactly 4 ranks";
  const std::string dir = shared_dir("ptrain_reshard");
  double trained_loss = 0;
  {
    parallel::ProcessGrid grid(MPI_COMM_WORLD, 2, 2);
    ASSERT_EQ(grid.dp_size(), 2);
    jobs::TrainConfig cfg = config(dir + "/run", 2);
    cfg.zero1 = true;
    cfg.dp = 2;
    jobs::SyntheticLatents d(2, 4, 4, cfg.seed, cfg.batch_size, grid.dp_rank(), grid.dp_size());
    jobs::Trainer t(cfg, grid, d);
    t.run();
    EXPECT_EQ(t.step(), 3);
    for (const auto& s : t.history()) EXPECT_TRUE(std::isfinite(s.loss));
    EXPECT_LT(t.history().back().loss, t.history().front().loss) << "TP2×DP2 did not train";
    trained_loss = fixed_batch_loss(t);
  }
  // TP 2 × DP 1: ranks {0,1} and {2,3} each load the file as one tensor-parallel pair.
  {
    MPI_Comm pair;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank() / 2, world_rank(), &pair);
    {
      parallel::ProcessGrid grid(pair, 2);
      jobs::TrainConfig cfg = config(dir + "/run", 2);
      cfg.output_dir = dir + "/tp2_" + std::to_string(world_rank() / 2);
      cfg.checkpoint_dir = dir + "/run/checkpoints";
      jobs::SyntheticLatents d(2, 4, 4, cfg.seed, cfg.batch_size, 0, 1);
      jobs::Trainer t(cfg, grid, d);
      EXPECT_NE(t.resume_if_possible(), "");
      EXPECT_EQ(t.step(), 3);
      EXPECT_NEAR(fixed_batch_loss(t), trained_loss, 1e-5 * std::abs(trained_loss)) << "TP 2 / DP 1";
    }
    MPI_Comm_free(&pair);
  }
  // TP 1 × DP 1: every rank alone.
  {
    parallel::ProcessGrid grid(MPI_COMM_SELF, 1);
    jobs::TrainConfig cfg = config(dir + "/solo" + std::to_string(world_rank()), 1);
    cfg.checkpoint_dir = dir + "/run/checkpoints";
    jobs::SyntheticLatents d(2, 4, 4, cfg.seed, cfg.batch_size, 0, 1);
    jobs::Trainer t(cfg, grid, d);
    EXPECT_NE(t.resume_if_possible(), "");
    EXPECT_NEAR(fixed_batch_loss(t), trained_loss, 1e-5 * std::abs(trained_loss)) << "TP 1 / DP 1";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST(ParallelTraining, LayoutsThatCannotBeFormedAreRefused) {
  EXPECT_EQ(parallel::grid_error(4, 2, 2), "");
  EXPECT_EQ(parallel::grid_error(4, 2, 0), "");
  EXPECT_EQ(parallel::grid_error(3, 2, 0), "tp 2 does not divide the 3 launched ranks");
  EXPECT_EQ(parallel::grid_error(6, 2, 2), "the layout tp 2 × dp 2 needs 4 ranks but 6 were launched");
  if (world_size() % 2 == 1) {
    EXPECT_THROW(parallel::ProcessGrid(MPI_COMM_WORLD, 2), std::invalid_argument);
  }
  // The config refuses tp not dividing the heads, naming the key.
  try {
    jobs::TrainConfig c = config("unused", 1);
    c.tp = 3;
    c.validate("parallel.yaml");
    ADD_FAILURE() << "tp 3 with 4 heads accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("key 'tp'"), std::string::npos) << e.what();
  }
}

TEST(ParallelTraining, GradientBucketsSumLikeOneAllReduce) {
  // Both paths (communication thread, non-blocking collectives) give the blocking all-reduce's result,
  // whatever order backward reports the tensors in, including tensors never reported.
  core::ParameterLayout layout;
  const std::vector<std::string> names = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"};
  for (int i = 0; i < 9; ++i) layout.add(names[i], {1000 + 37 * i});
  for (const bool thread : {true, false}) {
    parallel::MpiCommunicator dp(MPI_COMM_WORLD, thread ? parallel::MpiCommunicator::AsyncProgress::kAuto
                                                        : parallel::MpiCommunicator::AsyncProgress::kNonBlocking);
    std::vector<float> g(layout.total_size(), 0.f), want;
    for (const auto& v : layout.views())
      for (int64_t i = 0; i < v.size; ++i) g[v.offset + i] = float((i % 17) * (dp.rank() + 1)) * 0.25f;
    want = g;
    dp.all_reduce_sum(want.data(), static_cast<int64_t>(want.size()));
    parallel::GradientBuckets buckets(dp, layout, g.data(), /*bucket_bytes=*/8000);
    EXPECT_GT(buckets.buckets(), 2);
    buckets.begin();
    for (int i = 8; i >= 1; --i) buckets.gradient_ready(layout.at(names[i]).offset);  // t0: never
    buckets.finish();
    EXPECT_TRUE(g == want) << (thread ? "threaded" : "non-blocking");
  }
}

TEST(ParallelTraining, TP2PreviewGridMatchesOneProcess) {
  // The preview is sampled by the whole TP group (the deep block is split) and written by TP rank 0; it
  // shows what one process would sample from the same weights.
  if (world_size() != 2) GTEST_SKIP() << "runs on exactly 2 ranks";
  const std::string dir = shared_dir("ptrain_preview");
  auto make = [&](const std::string& out, int tp) {
    jobs::TrainConfig c = jobs::TrainConfig::from_yaml(R"(
channel_size: 4
img_size: 8
channels: 40
head_dim: 20
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 4
noise_std: 0
drop_label: 0
lr: 0.003
warmup_steps: 1
steps: 2
batch_size: 4
sample_every: 2
cfg: 2
seed: 9
log_every: 100
autoencoder: )" + jobs::default_autoencoder("fashion-mnist") + "\n", "preview.yaml");
    c.output_dir = out;
    c.tp = tp;
    return c;
  };
  {
    parallel::ProcessGrid grid(MPI_COMM_WORLD, 2);
    jobs::TrainConfig c = make(dir + "/tp2", 2);
    jobs::SyntheticLatents data(4, 8, 3, c.seed, c.batch_size, 0, 1);
    jobs::Trainer t(c, grid, data);
    t.run();
  }
  if (world_rank() == 0) {
    parallel::ProcessGrid self(MPI_COMM_SELF, 1);
    jobs::TrainConfig c = make(dir + "/tp1", 1);
    jobs::SyntheticLatents data(4, 8, 3, c.seed, c.batch_size, 0, 1);
    jobs::Trainer t(c, self, data);
    t.run();
    const data::Image a = data::read_png(dir + "/tp2/samples/step_00000002.png", data::ColorMode::kGray);
    const data::Image b = data::read_png(dir + "/tp1/samples/step_00000002.png", data::ColorMode::kGray);
    ASSERT_EQ(a.pixels.size(), b.pixels.size());
    int worst = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
    EXPECT_LE(worst, 2) << "TP 2 preview differs from one process by " << worst << " gray levels";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST(ParallelTraining, InitialWeightsStartAFreshRunInAnyLayout) {
  // `init_weights`: a run starts from exported official-name weights (here from a one-process run), split
  // over TP 2 where the ranks allow; a file for another config is refused naming the key.
  const std::string dir = shared_dir("ptrain_init");
  const std::string weights = dir + "/w.safetensors";
  double exported_loss = 0;
  if (world_rank() == 0) {
    parallel::ProcessGrid self(MPI_COMM_SELF, 1);
    jobs::TrainConfig c = config(dir + "/source", 1);
    jobs::SyntheticLatents d(2, 4, 4, c.seed, c.batch_size, 0, 1);
    jobs::Trainer t(c, self, d);
    t.run();
    core::io::save_weights(t.model(), weights);
    exported_loss = fixed_batch_loss(t);
  }
  MPI_Bcast(&exported_loss, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  const int tp = world_size() % 2 == 0 ? 2 : 1;
  parallel::ProcessGrid grid(MPI_COMM_WORLD, tp);
  jobs::TrainConfig c = config(dir + "/started", tp);
  c.batch_size = 4 * grid.dp_size();
  jobs::SyntheticLatents d(2, 4, 4, c.seed, c.batch_size, grid.dp_rank(), grid.dp_size());
  jobs::Trainer t(c, grid, d);
  t.load_initial_weights(weights);
  EXPECT_NEAR(fixed_batch_loss(t), exported_loss, 1e-5 * std::abs(exported_loss)) << "TP " << tp;

  jobs::TrainConfig other = config(dir + "/other", 1);
  other.model.channels = 100;  // 5 heads of 20
  parallel::ProcessGrid self(MPI_COMM_SELF, 1);
  jobs::SyntheticLatents d2(2, 4, 4, other.seed, other.batch_size, 0, 1);
  jobs::Trainer wrong(other, self, d2);
  try {
    wrong.load_initial_weights(weights);
    ADD_FAILURE() << "weights of another config accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("channels 80 in the file, 100 in the config"), std::string::npos) << e.what();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST(ParallelTraining, CorruptShardIsRefusedOnEveryRank) {
  // Under TP each rank reads only its runs of a split tensor; the tensor's checksum is still verified (by one
  // rank) and every rank refuses the checkpoint with the same message instead of one rank hanging the rest.
  if (world_size() != 2) GTEST_SKIP() << "runs on exactly 2 ranks";
  const std::string dir = shared_dir("ptrain_corrupt");
  parallel::ProcessGrid grid(MPI_COMM_WORLD, 2);
  jobs::TrainConfig c = config(dir + "/run", 2);
  std::string path;
  {
    jobs::SyntheticLatents d(2, 4, 4, c.seed, c.batch_size, 0, 1);
    jobs::Trainer t(c, grid, d);
    t.run();
    path = jobs::newest_checkpoint(dir + "/run/checkpoints");
  }
  if (world_rank() == 0) {
    const jobs::CheckpointInfo info = jobs::read_checkpoint_header(path);
    uint64_t offset = 0;
    for (const auto& t : info.header.at("tensors"))
      if (t.at("name") == "model.blocks.1.attn_blocks.1.mlp.main.2.weight") offset = t.at("offset").get<uint64_t>();
    ASSERT_GT(offset, 0u);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset + 4 * 7));  // row 0, column 7: rank 0's half of the columns
    const float bad = 1234.5f;
    f.write(reinterpret_cast<const char*>(&bad), sizeof bad);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  jobs::SyntheticLatents d(2, 4, 4, c.seed, c.batch_size, 0, 1);
  jobs::Trainer again(c, grid, d);
  try {
    again.resume_if_possible();
    ADD_FAILURE() << "a corrupt shard was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.blocks.1.attn_blocks.1.mlp.main.2.weight': checksum mismatch"),
              std::string::npos)
        << e.what();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}
