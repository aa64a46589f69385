// ShardDataset and PrefetchingReader: the per-epoch permutation, its partition over data-parallel ranks,
// cursors that resume exactly, and a prefetch thread that returns what direct reads return.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/prefetching_reader.h"
#include "data/shard_dataset.h"
#include "shard_test_util.h"

using namespace starflow::data;
using namespace starflow::data::testing_util;

namespace {

class ShardDatasetTest : public ShardDirectoryTest {
 protected:
  // Four shards of 7, 0, 11 and 6 samples (24 in all; one empty), ids 1000 + global index.
  void SetUp() override {
    ShardDirectoryTest::SetUp();
    int64_t first = 1000;
    const int64_t sizes[] = {7, 0, 11, 6};
    for (size_t s = 0; s < 4; ++s) {
      // Mixed storage types in one dataset: all read back as float.
      header_.latent_type = s % 2 ? StorageType::Float16 : StorageType::Float32;
      write_shard(file("shard-" + std::to_string(s) + ".h5"), header_, first, sizes[s], 4);
      first += sizes[s];
    }
    paths_ = find_shards(dir_.string());
  }
  ShardDataset dataset(int64_t dp_rank, int64_t dp_size, int64_t batch, uint64_t seed = 7) const {
    ShardDatasetOptions options;
    options.seed = seed;
    options.dp_rank = dp_rank;
    options.dp_size = dp_size;
    options.batch_per_rank = batch;
    options.max_open_shards = 2;  // fewer than the shards: exercises closing and reopening
    return ShardDataset(paths_, options);
  }
  // Every sample of a batch is the one its id names, whichever shard it came from.
  void expect_consistent(const SampleBatch& batch) const {
    for (int64_t s = 0; s < batch.size(); ++s) {
      ShardHeader h = header_;
      // Shards 0 and 2 (global indices below 18) are float32, shard 3 float16.
      h.latent_type = batch.sample_ids[s] - 1000 < 18 ? StorageType::Float32 : StorageType::Float16;
      expect_sample(h, batch, s, batch.sample_ids[s]);
    }
  }

  ShardHeader header_ = tiny_header(Conditioning::ClassLabels);
  std::vector<std::string> paths_;
};

TEST_F(ShardDatasetTest, FindsShardsInOrderWithoutTemporaries) {
  ASSERT_EQ(paths_.size(), 4u);
  for (size_t s = 0; s < 4; ++s) EXPECT_EQ(paths_[s], file("shard-" + std::to_string(s) + ".h5"));
  write_bytes(file("shard-9.h5.tmp.123"), {'x'});
  write_bytes(file("notes.txt"), {'x'});
  EXPECT_EQ(find_shards(dir_.string()), paths_);
  EXPECT_EQ(find_shards(file("shard-*")), paths_);
  EXPECT_EQ(find_shards(file("shard-2.h5")), std::vector<std::string>{file("shard-2.h5")});
  one_line_error(file("none-*.h5"), [&] { find_shards(file("none-*.h5")); });
}

TEST_F(ShardDatasetTest, PermutationIsDeterministicPerSeedAndEpoch) {
  const ShardDataset data = dataset(0, 1, 4);
  const std::vector<int64_t> epoch0 = data.permutation(0);
  std::vector<int64_t> sorted = epoch0;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 24; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_EQ(epoch0, dataset(1, 3, 2).permutation(0));  // the same on every rank, whatever the batch
  EXPECT_NE(epoch0, data.permutation(1));
  EXPECT_NE(data.permutation(1), data.permutation(2));
  EXPECT_NE(epoch0, dataset(0, 1, 4, /*seed=*/8).permutation(0));
}

TEST_F(ShardDatasetTest, PartitionCoversEverySampleOncePerEpoch) {
  for (const int64_t dp_size : {1, 2, 3}) {
    SCOPED_TRACE("dp_size " + std::to_string(dp_size));
    std::vector<ShardDataset> ranks;
    for (int64_t r = 0; r < dp_size; ++r) ranks.push_back(dataset(r, dp_size, 4));  // 24 = 2·3·4
    ASSERT_EQ(ranks[0].steps_per_epoch(), 24 / (4 * dp_size));
    Cursor cursor;
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      std::multiset<int64_t> seen;
      for (int64_t step = 0; step < ranks[0].steps_per_epoch(); ++step) {
        Cursor next;
        for (ShardDataset& rank : ranks) {
          const Batch batch = rank.read_batch(cursor);
          EXPECT_EQ(batch.cursor, cursor);
          expect_consistent(batch.samples);
          seen.insert(batch.samples.sample_ids.begin(), batch.samples.sample_ids.end());
          next = batch.next_cursor;  // the same on every rank
        }
        cursor = next;
      }
      EXPECT_EQ(cursor, (Cursor{epoch + 1, 0}));
      ASSERT_EQ(seen.size(), 24u);
      for (int64_t id = 1000; id < 1024; ++id) EXPECT_EQ(seen.count(id), 1u) << id;
    }
  }
}

TEST_F(ShardDatasetTest, RemainderIsDroppedSoRanksTakeEqualSteps) {
  std::vector<ShardDataset> ranks;
  for (int64_t r = 0; r < 3; ++r) ranks.push_back(dataset(r, 3, 5));  // G = 15: one step, 9 dropped
  EXPECT_EQ(ranks[0].steps_per_epoch(), 1);
  std::set<int64_t> seen;
  for (ShardDataset& rank : ranks) {
    const Batch batch = rank.read_batch({});
    EXPECT_EQ(batch.next_cursor, (Cursor{1, 0}));
    seen.insert(batch.samples.sample_ids.begin(), batch.samples.sample_ids.end());
  }
  EXPECT_EQ(seen.size(), 15u);
  // The dropped samples are the tail of each epoch's permutation, so they change with the epoch.
  const std::vector<int64_t> epoch0 = ranks[0].permutation(0), epoch1 = ranks[0].permutation(1);
  EXPECT_NE(std::set<int64_t>(epoch0.begin() + 15, epoch0.end()), std::set<int64_t>(epoch1.begin() + 15, epoch1.end()));
  EXPECT_THROW(dataset(0, 5, 5), std::runtime_error);  // 24 samples cannot fill 25
}

TEST_F(ShardDatasetTest, SavedCursorResumesToTheSameBatch) {
  ShardDataset original = dataset(1, 2, 3);  // G = 6: 4 steps per epoch
  std::vector<Batch> run;
  Cursor cursor;
  for (int step = 0; step < 11; ++step) {
    run.push_back(original.read_batch(cursor));
    cursor = run.back().next_cursor;
  }
  EXPECT_EQ(run[4].cursor, (Cursor{1, 0}));
  for (const size_t resume_at : {size_t(2), size_t(3), size_t(4), size_t(9)}) {  // 3 → 4 crosses an epoch
    const std::string saved = run[resume_at - 1].next_cursor.to_string();
    ShardDataset resumed = dataset(1, 2, 3);
    Cursor restored = Cursor::parse(saved);
    for (size_t step = resume_at; step < run.size(); ++step) {
      const Batch batch = resumed.read_batch(restored);
      EXPECT_EQ(batch.cursor, run[step].cursor);
      EXPECT_EQ(batch.samples.sample_ids, run[step].samples.sample_ids);
      EXPECT_EQ(batch.samples.latents.data, run[step].samples.latents.data);
      restored = batch.next_cursor;
    }
  }
}

TEST_F(ShardDatasetTest, CursorTextRoundTripsAndRejectsGarbage) {
  const Cursor cursor{12, 3456};
  EXPECT_EQ(cursor.to_string(), "epoch=12 position=3456");
  EXPECT_EQ(Cursor::parse(cursor.to_string()), cursor);
  for (const char* bad : {"", "epoch=1", "epoch=1 position=", "epoch=-1 position=0", "epoch=1 position=2x",
                          "position=2 epoch=1"})
    EXPECT_THROW(Cursor::parse(bad), std::invalid_argument) << bad;
}

TEST_F(ShardDatasetTest, RejectsShardsThatDoNotBelongTogether) {
  ShardHeader other = header_;
  other.latent_shape = {2, 4, 4};
  write_shard(file("shard-4.h5"), other, 5000, 3);
  const std::string message = one_line_error(file("shard-4.h5"), [&] { ShardDataset(find_shards(dir_.string()), {}); });
  EXPECT_NE(message.find("[2, 4, 4]"), std::string::npos) << message;
}

TEST_F(ShardDatasetTest, PrefetchReturnsWhatDirectReadsReturn) {
  ShardDataset direct = dataset(2, 3, 2);  // G = 6: 4 steps per epoch
  const Cursor start{0, 12};
  PrefetchingReader prefetching(dataset(2, 3, 2), start, /*queue_depth=*/3);
  EXPECT_EQ(prefetching.cursor(), start);
  Cursor cursor = start;
  for (int step = 0; step < 14; ++step) {  // a few epochs
    const Batch expected = direct.read_batch(cursor);
    const Batch got = prefetching.next();
    EXPECT_EQ(got.cursor, expected.cursor);
    EXPECT_EQ(got.samples.sample_ids, expected.samples.sample_ids);
    EXPECT_EQ(got.samples.labels, expected.samples.labels);
    EXPECT_EQ(got.samples.latents.data, expected.samples.latents.data);
    cursor = expected.next_cursor;
    EXPECT_EQ(prefetching.cursor(), cursor);
  }
  EXPECT_GE(prefetching.waited_seconds(), 0.0);
}

TEST_F(ShardDatasetTest, PrefetchStopsCleanlyWithAFullQueue) {
  for (int i = 0; i < 5; ++i) {
    PrefetchingReader reader(dataset(0, 1, 1), {}, /*queue_depth=*/1);
    if (i % 2) reader.next();
  }  // each destructor must join without waiting for a consumer
}

TEST_F(ShardDatasetTest, PrefetchErrorReachesTheConsumer) {
  ShardDataset data = dataset(0, 1, 24);  // one batch is the whole epoch: every shard is read each step
  fs::remove(file("shard-2.h5"));          // gone after the dataset was opened
  PrefetchingReader reader(std::move(data), {});
  for (int attempt = 0; attempt < 2; ++attempt)  // and it stays failed
    EXPECT_NE(one_line_error(file("shard-2.h5"), [&] { reader.next(); }).find("No such file"), std::string::npos);
}

}  // namespace
