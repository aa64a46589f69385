// `starflow bench data`: samples/s of the training reader (shuffled reads from compressed shards through
// the prefetch thread) on one core, printed next to the rate a training step needs. The shards are written
// fresh to a temporary directory and so sit in the page cache: this measures decompression and HDF5
// overhead, the reader's own cost, not the disk.
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "core/random.h"
#include "data/latent_shard.h"
#include "data/prefetching_reader.h"
#include "data/shard_dataset.h"

#include "tools/options.h"

namespace starflow::tools {

namespace {

namespace fs = std::filesystem;

struct BenchOptions {
  int need = 2000;
  int shards = 4;
  int samples = 2048;
  int batch = 16;
  int seconds = 3;
  int gzip = data::ShardWriterOptions{}.gzip_level;
  int chunk_kib = static_cast<int>(data::ShardWriterOptions{}.chunk_target_bytes >> 10);
  int text = 0;
};


// Removes the scratch shards however the bench ends.
class ScratchDirectory {
 public:
  ScratchDirectory() : path_(fs::temp_directory_path() / ("starflow_bench_data_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Autoencoder latents look like unit Gaussian noise to a compressor, so that is what we store: random
// data compresses about as badly as the real thing (constant data would flatter the reader).
data::ShardHeader write_shards(const BenchOptions& options, const fs::path& directory) {
  data::ShardHeader header;
  header.autoencoder = "bench";
  header.latent_shape = {4, 32, 32};
  header.latent_type = data::StorageType::Float16;
  if (options.text > 0) {
    header.conditioning = data::Conditioning::TextEmbeddings;
    header.text_encoder = "bench";
    header.text_length = options.text;
    header.text_dim = 100;
  } else {
    header.conditioning = data::Conditioning::ClassLabels;
    header.num_classes = 1000;
  }
  header.source = "starflow bench data";
  data::ShardWriterOptions writer_options;
  writer_options.gzip_level = options.gzip;
  writer_options.chunk_target_bytes = int64_t(options.chunk_kib) << 10;
  core::Rng rng(42);
  const int64_t per_append = 256;
  for (int s = 0; s < options.shards; ++s) {
    char name[32];
    std::snprintf(name, sizeof name, "bench-%04d.h5", s);
    data::LatentShardWriter writer((directory / name).string(), header, writer_options);
    for (int64_t done = 0; done < options.samples; done += per_append) {
      const int64_t count = std::min<int64_t>(per_append, options.samples - done);
      data::SampleBatch batch = data::SampleBatch::allocate(header, count, false);
      for (float& x : batch.latents.data) x = static_cast<float>(rng.normal());
      for (float& x : batch.text_embeddings.data) x = static_cast<float>(rng.normal());
      for (uint8_t& m : batch.text_mask.data) m = 1;
      for (int64_t i = 0; i < count; ++i) {
        batch.sample_ids[i] = int64_t(s) * options.samples + done + i;
        if (!batch.labels.empty()) batch.labels[i] = static_cast<int64_t>(rng.next_u64() % 1000);
      }
      writer.append(batch);
    }
    writer.finish();
  }
  return header;
}

// CPU seconds this process has used (all threads). On a shared machine wall time says how busy the
// neighbours are; CPU time says what the reader costs.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return double(t.tv_sec) + 1e-6 * double(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Keeps the process (consumer and prefetch thread) on the first CPU it may use: "one core".
int pin_to_one_cpu() {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      return sched_setaffinity(0, sizeof one, &one) == 0 ? cpu : -1;
    }
  return -1;
}

}  // namespace

int bench_data(int argc, char** argv) {
  BenchOptions options;
  // One table for the parser and the usage text (tools/options.h).
  const Option table[] = {
      int_option("--need", options.need, 1, "samples/s the training step consumes (default 2000)"),
      int_option("--shards", options.shards, 1, "shards to write (default 4)"),
      int_option("--samples", options.samples, 1, "samples per shard (default 2048)"),
      int_option("--batch", options.batch, 1, "batch per rank (default 16)"),
      int_option("--seconds", options.seconds, 1, "how long to read (default 3)"),
      int_option("--gzip", options.gzip, 0, "deflate level of the shards, 0 = none (default: the writer's)"),
      int_option("--chunk-kib", options.chunk_kib, 1, "target KiB per /latents chunk (default: the writer's)"),
      int_option("--text", options.text, 0, "text tokens of 100 dims per sample instead of labels, 0 = labels (default 0)")};
  const int parsed = parse_options("bench data", "Latent-shard reader throughput on one core.", table, argc, argv);
  if (parsed >= 0) return parsed;
  try {
    ScratchDirectory scratch;
    const auto write_start = std::chrono::steady_clock::now();
    const data::ShardHeader header = write_shards(options, scratch.path());
    const double write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
    uintmax_t bytes = 0;
    for (const fs::directory_entry& entry : fs::directory_iterator(scratch.path())) bytes += entry.file_size();
    const double total = double(options.shards) * options.samples;
    const double raw_bytes = total * double(header.latent_numel() * 2 + header.text_numel() * 2 + header.text_length + 16);
    std::printf("shards: %d × %d samples of latents [4, 32, 32] float16 + %s, gzip %d, %d KiB chunks: %.1f MiB "
                "(%.2f of raw), written at %.0f samples/s\n",
                options.shards, options.samples,
                options.text > 0 ? (std::to_string(options.text) + "×100 float16 text").c_str() : "labels",
                options.gzip, options.chunk_kib, double(bytes) / (1 << 20), double(bytes) / raw_bytes,
                total / write_seconds);

    const int pinned = pin_to_one_cpu();
    data::ShardDatasetOptions dataset_options;
    dataset_options.seed = 1;
    dataset_options.batch_per_rank = options.batch;
    data::PrefetchingReader reader(data::ShardDataset(data::find_shards(scratch.path().string()), dataset_options),
                                   data::Cursor{});
    reader.next();  // opens the shards: not part of the steady state
    int64_t batches = 0;
    const double cpu_start = cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < options.seconds) {
      reader.next();
      ++batches;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    const double cpu = cpu_seconds() - cpu_start;
    const double samples = double(batches) * options.batch;
    // Per CPU second is what one dedicated core delivers; wall clock is what this run got on this machine.
    const double rate = samples / cpu;
    std::printf("reader: shuffled batches of %d through the prefetch thread, %s, %.1f s wall, %.1f s CPU, %lld "
                "batches\n",
                options.batch, pinned >= 0 ? ("pinned to CPU " + std::to_string(pinned)).c_str() : "not pinned", elapsed,
                cpu, static_cast<long long>(batches));
    std::printf("%-34s %12s %8s\n", "", "samples/s", "/ need");
    std::printf("%-34s %12.0f %8.2f  %s\n", "reader, per CPU second (one core)", rate, rate / options.need,
                rate >= options.need ? "keeps up" : "TOO SLOW: the step would wait on I/O");
    std::printf("%-34s %12.0f %8.2f\n", "reader, wall clock (this run)", samples / elapsed, samples / elapsed / options.need);
    std::printf("%-34s %12d %8.2f\n", "training step needs (--need)", options.need, 1.0);
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench data: %s\n", error.what());
    return 1;
  }
}

}  // namespace starflow::tools
