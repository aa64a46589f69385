// GradientBuckets: bucketed, overlapped gradient all-reduce on the communicator's asynchronous collectives.
#include "parallel/gradient_buckets.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace starflow::parallel {
namespace {
double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

GradientBuckets::GradientBuckets(core::Communicator& dp, const core::ParameterLayout& layout, void* grads,
                                 core::ElementType type, int64_t bucket_bytes, core::Stream stream)
    : dp_(dp), grads_(static_cast<char*>(grads)), type_(type), stream_(stream) {
  const int64_t bucket_elems = std::max<int64_t>(1, bucket_bytes / core::element_bytes(type));
  for (const core::ParameterView& v : layout.views()) {
    if (buckets_.empty() || buckets_.back().end - buckets_.back().begin >= bucket_elems)
      buckets_.push_back({v.offset, v.offset, 0, 0, false});
    Bucket& b = buckets_.back();
    b.end = v.offset + v.size;
    b.expected += v.size;
    tensor_[v.offset] = {buckets_.size() - 1, v.size};
  }
}

void GradientBuckets::begin() {
  for (Bucket& b : buckets_) b.arrived = 0, b.started = false;
  pending_.clear();
  any_started_ = false;
}

void GradientBuckets::start(size_t index) {
  Bucket& b = buckets_[index];
  b.started = true;
  if (dp_.size() == 1) return;
  if (!any_started_) first_start_ = std::chrono::steady_clock::now(), any_started_ = true;
  pending_.push_back(
      dp_.all_reduce_sum_async(grads_ + b.begin * core::element_bytes(type_), b.end - b.begin, type_, stream_));
}

void GradientBuckets::gradient_ready(int64_t offset) {
  auto it = tensor_.find(offset);
  if (it == tensor_.end()) throw std::logic_error("gradient_ready: no parameter at offset " + std::to_string(offset));
  Bucket& b = buckets_[it->second.first];
  b.arrived += it->second.second;
  if (b.arrived == b.expected && !b.started) start(it->second.first);
  // Non-blocking collectives advance only inside the library's calls (Open MPI): poke them between layers.
  for (const core::Pending& p : pending_) p->test();
}

double GradientBuckets::finish() {
  const auto t0 = std::chrono::steady_clock::now();
  // Buckets backward did not complete (parameters without gradient this step): in bucket order, identical
  // on every rank.
  for (size_t i = 0; i < buckets_.size(); ++i)
    if (!buckets_[i].started) start(i);
  for (const core::Pending& p : pending_) p->wait();
  pending_.clear();
  const auto t1 = std::chrono::steady_clock::now();
  comm_span_ = any_started_ ? seconds(t1 - first_start_) : 0;
  return seconds(t1 - t0);
}

}  // namespace starflow::parallel
