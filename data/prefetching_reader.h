// The reader training uses: a background thread reads the next batches of this rank's partition into a
// bounded queue while the step computes, so the step only waits when the disk cannot keep up. The
// thread's exceptions (a corrupt shard) reach the training loop from next(), after the good batches
// read before it.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "data/shard_dataset.h"

namespace starflow::data {

class PrefetchingReader {
 public:
  // Starts reading at `start` (a cursor from a checkpoint, or {} for a fresh run), keeping up to
  // `queue_depth` batches ready.
  PrefetchingReader(ShardDataset dataset, Cursor start, int64_t queue_depth = 4);
  ~PrefetchingReader();  // stops the thread (after the batch it is reading) and joins it
  PrefetchingReader(const PrefetchingReader&) = delete;
  PrefetchingReader& operator=(const PrefetchingReader&) = delete;

  Batch next();
  // Where the batch the next call to next() returns starts: what a checkpoint stores.
  Cursor cursor() const;
  // Header, sizes, permutation: the const parts of the dataset, safe while the thread runs.
  const ShardDataset& dataset() const { return dataset_; }

  // How long next() has waited for the thread in total, and how often: the step waits on I/O exactly
  // when these grow.
  double waited_seconds() const;
  int64_t waits() const;

 private:
  void run(Cursor start);

  ShardDataset dataset_;
  const size_t queue_depth_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;  // a batch or an error arrived
  std::condition_variable space_;  // the consumer took one, or stop
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool stop_ = false;
  Cursor cursor_;
  double waited_seconds_ = 0;
  int64_t waits_ = 0;
  std::thread thread_;  // last: it starts after everything it uses exists
};

}  // namespace starflow::data
