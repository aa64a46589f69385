// PrefetchingReader: one producer thread, one consumer, a bounded queue between them.
#include "data/prefetching_reader.h"

#include <chrono>
#include <stdexcept>

namespace starflow::data {

PrefetchingReader::PrefetchingReader(ShardDataset dataset, Cursor start, int64_t queue_depth)
    : dataset_(std::move(dataset)),
      queue_depth_(queue_depth >= 1 ? static_cast<size_t>(queue_depth)
                                    : throw std::invalid_argument("prefetch queue depth must be at least 1")),
      cursor_(dataset_.normalize(start)),
      thread_([this, first = cursor_] { run(first); }) {}

PrefetchingReader::~PrefetchingReader() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  thread_.join();
}

void PrefetchingReader::run(Cursor cursor) {
  try {
    for (;;) {
      Batch batch = dataset_.read_batch(cursor);  // the slow part, outside the lock
      cursor = batch.next_cursor;
      std::unique_lock lock(mutex_);
      space_.wait(lock, [&] { return stop_ || queue_.size() < queue_depth_; });
      if (stop_) return;
      queue_.push_back(std::move(batch));
      lock.unlock();
      ready_.notify_one();
    }
  } catch (...) {
    std::lock_guard lock(mutex_);
    error_ = std::current_exception();
  }
  ready_.notify_one();
}

Batch PrefetchingReader::next() {
  std::unique_lock lock(mutex_);
  if (queue_.empty() && !error_) {
    const auto start = std::chrono::steady_clock::now();
    ready_.wait(lock, [&] { return !queue_.empty() || error_; });
    waited_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++waits_;
  }
  if (queue_.empty()) std::rethrow_exception(error_);  // every good batch first; then the failure, each call
  Batch batch = std::move(queue_.front());
  queue_.pop_front();
  cursor_ = batch.next_cursor;
  lock.unlock();
  space_.notify_one();
  return batch;
}

Cursor PrefetchingReader::cursor() const {
  std::lock_guard lock(mutex_);
  return cursor_;
}

double PrefetchingReader::waited_seconds() const {
  std::lock_guard lock(mutex_);
  return waited_seconds_;
}

int64_t PrefetchingReader::waits() const {
  std::lock_guard lock(mutex_);
  return waits_;
}

}  // namespace starflow::data
