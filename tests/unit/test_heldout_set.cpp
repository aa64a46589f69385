// Held-out evaluation's pieces (its config keys: test_train_config.cpp): the deterministic split of training shards (eval_fraction), the synthetic held-out set (fixed samples and noise,
// every data-parallel layout's parts adding up to the same set), and the balanced choice of which rank writes
// each tensor of a checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/models/starflow_model.h"
#include "jobs/heldout_set.h"
#include "jobs/synthetic_latents.h"
#include "jobs/train_config.h"
#include "jobs/trainer.h"

using namespace starflow;

namespace {

const std::string kModel =
    "channel_size: 4\nimg_size: 8\nchannels: 64\nhead_dim: 32\nblocks: 2\nlayers_per_block: [1, 1]\n"
    "txt_size: 1\ntxt_dim: 5\nbatch_size: 4\nseed: 3\n";

}  // namespace

TEST(HeldoutEval, ShardSplitIsSpreadAndDeterministic) {
  std::vector<std::string> paths;
  for (int i = 9; i >= 0; --i) paths.push_back("s/shard-0000" + std::to_string(i) + ".h5");  // unsorted on purpose
  const auto [train, held] = jobs::split_heldout_shards(paths, 0.2, "s");
  EXPECT_EQ(held, (std::vector<std::string>{"s/shard-00004.h5", "s/shard-00009.h5"}));
  EXPECT_EQ(train.size(), 8u);
  for (const std::string& p : held) EXPECT_EQ(std::count(train.begin(), train.end(), p), 0);
  // A tiny fraction still holds one out and leaves the rest.
  const auto [train2, held2] = jobs::split_heldout_shards({"a.h5", "b.h5"}, 0.01, "s");
  EXPECT_EQ(held2, (std::vector<std::string>{"b.h5"}));
  EXPECT_EQ(train2, (std::vector<std::string>{"a.h5"}));
  try {
    jobs::split_heldout_shards({"a.h5"}, 0.1, "dir");
    FAIL() << "one shard cannot be split";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("dir: eval_fraction needs at least 2 shards", 0), 0u) << e.what();
  }
}

TEST(HeldoutEval, SyntheticSetIsFixedAndTheSameForAnyLayout) {
  const jobs::TrainConfig cfg = jobs::TrainConfig::from_yaml(kModel + "eval_every: 5\neval_batches: 3\n", "run.yaml");
  const jobs::HeldoutSet one = jobs::heldout_synthetic(cfg, 0, 1);
  ASSERT_EQ(one.batches.size(), 3u);
  EXPECT_EQ(one.total_samples, 12);
  // Two ranks' parts of each batch are the one-rank batch, halves in rank order, bit for bit.
  const jobs::HeldoutSet r0 = jobs::heldout_synthetic(cfg, 0, 2), r1 = jobs::heldout_synthetic(cfg, 1, 2);
  for (size_t k = 0; k < 3; ++k) {
    std::vector<float> joined = r0.batches[k].latents;
    joined.insert(joined.end(), r1.batches[k].latents.begin(), r1.batches[k].latents.end());
    EXPECT_EQ(joined, one.batches[k].latents) << "batch " << k;
    EXPECT_EQ(one.batches[k].position, int64_t(k) * 4);
  }
  // The training seed changes the distribution's means but not the noise's keys; the set is reproducible.
  EXPECT_EQ(jobs::heldout_synthetic(cfg, 0, 1).batches[2].latents, one.batches[2].latents);
  // Held out: none of its samples is one training reads first (training starts at index 0).
  jobs::SyntheticLatents train(4, 8, 4, cfg.seed, 4, 0, 1);
  EXPECT_NE(train.next().latents, one.batches[0].latents);
}

TEST(CheckpointOwners, EveryRankWritesAboutTheSameBytes) {
  const core::FlowConfig m = jobs::TrainConfig::from_yaml(kModel, "run.yaml").model;
  const core::StarFlowModel<float> model(m);
  const auto& views = model.layout().views();
  for (const int dp : {2, 3, 8}) {
    const jobs::trainer_detail::CheckpointOwners owners = jobs::trainer_detail::checkpoint_owners(views, 1, dp);
    std::vector<int64_t> bytes(dp, 0);
    int64_t total = 0, largest = 0;
    for (size_t i = 0; i < views.size(); ++i) {
      ASSERT_GE(owners.dp[i], 0);
      ASSERT_LT(owners.dp[i], dp);
      bytes[owners.dp[i]] += views[i].size;
      total += views[i].size;
      largest = std::max(largest, views[i].size);
    }
    // Greedy largest-first: no rank exceeds the mean by more than the largest tensor.
    for (int r = 0; r < dp; ++r) EXPECT_LE(bytes[r], total / dp + largest) << "dp " << dp << " rank " << r;
    const int64_t least = *std::min_element(bytes.begin(), bytes.end());
    EXPECT_GE(least, total / dp - largest) << "dp " << dp;
  }
}
