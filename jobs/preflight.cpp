// run_preflight: the per-rank checks, gathered on rank 0 and judged there (see preflight.h).
#include "jobs/preflight.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/ops/cpu/gemm.h"
#include "data/shard_dataset.h"
#include "parallel/process_grid.h"

namespace starflow::jobs {

namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The best time of `runs` calls after one untimed call: what the node can do, not what a neighbour's burst
// left it (a bad node is slow in every run).
double best_time(const std::function<void()>& call, int runs = 3) {
  call();
  double best = 1e300;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// The median of the positive values (the mean of the middle two for an even count); 0 when there is none.
double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !(x > 0); }), v.end());
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double gemm_gflops(int64_t n) {
  std::vector<float> a(n * n), b(n * n), c(n * n);
  for (int64_t i = 0; i < n * n; ++i) {
    a[i] = float(i % 7) * 0.1f;
    b[i] = float(i % 5) * 0.1f;
  }
  const double t = best_time([&] {
    core::cpu::gemm<float>(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
  });
  return 2.0 * double(n) * double(n) * double(n) / t * 1e-9;
}

// Rank r sends to r+1 and receives from r−1 (a ring step): the GB/s this rank received at.
double exchange_gbs(MPI_Comm comm, int64_t mb) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (size < 2) return 0;
  const int count = static_cast<int>(mb * (1 << 20) / sizeof(float));
  std::vector<float> send(count, float(rank)), recv(count);
  const double t = best_time([&] {
    MPI_Sendrecv(send.data(), count, MPI_FLOAT, (rank + 1) % size, 7, recv.data(), count, MPI_FLOAT,
                 (rank + size - 1) % size, 7, comm, MPI_STATUS_IGNORE);
  });
  return double(count) * sizeof(float) / t * 1e-9;
}

// The ring all-reduce's bus bandwidth (NCCL's convention, comparable across rank counts): the slowest rank's time.
double allreduce_busbw_gbs(MPI_Comm comm, int64_t mb) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  if (size < 2) return 0;
  const int count = static_cast<int>(mb * (1 << 20) / sizeof(float));
  std::vector<float> data(count, 1.f);
  double t = best_time([&] {
    MPI_Barrier(comm);
    MPI_Allreduce(MPI_IN_PLACE, data.data(), count, MPI_FLOAT, MPI_SUM, comm);
  });
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
  return 2.0 * double(size - 1) / double(size) * double(count) * sizeof(float) / t * 1e-9;
}

[[noreturn]] void fail_errno(const std::string& what, const fs::path& path) {
  throw std::runtime_error("checkpoint directory: " + what + " " + path.string() + ": " + std::strerror(errno));
}

// Writes mb MiB to a file in `dir`, fsyncs it, drops it from the page cache and reads it back, checking every
// byte; the file is removed. Returns {write MB/s (fsync included), read MB/s}; throws one line on any error.
std::pair<double, double> checkpoint_dir_io(const std::string& dir, int rank, int64_t mb) {
  fs::create_directories(dir);
  const fs::path path = fs::path(dir) / (".preflight-rank" + std::to_string(rank) + "-" + std::to_string(::getpid()));
  constexpr size_t kChunk = size_t{4} << 20;
  std::vector<unsigned char> chunk(kChunk), back(kChunk);
  const int64_t chunks = std::max<int64_t>(1, mb / 4);
  auto fill = [&](int64_t c) {
    for (size_t i = 0; i < kChunk; ++i) chunk[i] = static_cast<unsigned char>((i * 131 + c * 7 + rank) & 0xff);
  };
  auto t0 = std::chrono::steady_clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail_errno("cannot create", path);
  for (int64_t c = 0; c < chunks; ++c) {
    fill(c);
    size_t done = 0;
    while (done < kChunk) {
      const ssize_t n = ::write(fd, chunk.data() + done, kChunk - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int e = errno;
        ::close(fd);
        fs::remove(path);
        errno = e;
        fail_errno("cannot write", path);
      }
      done += static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    fs::remove(path);
    errno = e;
    fail_errno("cannot fsync", path);
  }
  const double write_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  const int in = ::open(path.c_str(), O_RDONLY);
  if (in < 0) fail_errno("cannot reopen", path);
  ::posix_fadvise(in, 0, 0, POSIX_FADV_DONTNEED);  // read from the storage, not from the pages just written
  bool same = true;
  for (int64_t c = 0; c < chunks && same; ++c) {
    size_t done = 0;
    while (done < kChunk) {
      const ssize_t n = ::read(in, back.data() + done, kChunk - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    fill(c);
    same = done == kChunk && std::memcmp(back.data(), chunk.data(), kChunk) == 0;
  }
  ::close(in);
  const double read_s = seconds_since(t0);
  fs::remove(path);
  if (!same) throw std::runtime_error("checkpoint directory: " + path.string() + " read back differently from what was written");
  const double bytes = double(chunks) * double(kChunk) / 1e6;
  return {bytes / write_s, bytes / read_s};
}

// Opens the shards holding this rank's first and last sample of the first epoch and reads one sample of each.
std::string check_shards(const TrainConfig& cfg, int64_t dp_rank, int64_t dp_size) {
  if (cfg.data == "synthetic") return "synthetic data";
  data::ShardDatasetOptions o;
  o.seed = cfg.seed;
  o.dp_rank = dp_rank;
  o.dp_size = dp_size;
  o.batch_per_rank = std::max<int64_t>(1, cfg.batch_size / dp_size);
  data::ShardDataset shards(data::find_shards(cfg.data), o);
  if (shards.steps_per_epoch() < 1)
    throw std::runtime_error(cfg.data + ": fewer samples than one global batch of " + std::to_string(cfg.batch_size));
  const int64_t first = shards.batch_indices({0, 0}).front();
  const int64_t last = shards.batch_indices({0, (shards.steps_per_epoch() - 1) * shards.global_batch()}).back();
  for (const int64_t index : {first, last}) {
    const auto [shard, at] = shards.locate(index);
    const data::LatentShardReader reader(shards.shard_paths()[shard]);  // a fresh open: the file is really read
    (void)reader.read(at, 1);
  }
  const auto name = [&](int64_t index) { return fs::path(shards.shard_paths()[shards.locate(index).first]).filename().string(); };
  return name(first) + ", " + name(last) + " OK";
}

// One row as text (tab-separated; the free-text fields cannot hold tabs or newlines).
std::string encode_row(const PreflightRow& r) {
  auto clean = [](std::string s) {
    std::replace(s.begin(), s.end(), '\t', ' ');
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
  };
  std::ostringstream out;
  out.precision(17);
  out << r.rank << '\t' << clean(r.host) << '\t' << r.gemm_gflops << '\t' << r.exchange_gbs << '\t' << r.write_mbs
      << '\t' << r.read_mbs << '\t' << clean(r.shards) << '\t' << r.failed << '\t' << clean(r.problem);
  return out.str();
}

PreflightRow decode_row(const std::string& text) {
  std::vector<std::string> f;
  std::string field;
  std::istringstream in(text);
  while (std::getline(in, field, '\t')) f.push_back(field);
  f.resize(9);
  PreflightRow r;
  r.rank = std::stoi(f[0]);
  r.host = f[1];
  r.gemm_gflops = std::stod(f[2]);
  r.exchange_gbs = std::stod(f[3]);
  r.write_mbs = std::stod(f[4]);
  r.read_mbs = std::stod(f[5]);
  r.shards = f[6];
  r.failed = f[7] == "1";
  r.problem = f[8];
  return r;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

std::string fixed(double x, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << x;
  return s.str();
}

}  // namespace

PreflightOptions preflight_options(const TrainConfig& config) {
  PreflightOptions o;
  o.slow_fraction = config.preflight_slow;
  o.expect_gflops = config.preflight_expect_gflops;
  return o;
}

PreflightReport run_preflight(const TrainConfig& cfg, const PreflightOptions& o, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  PreflightRow me;
  me.rank = rank;
  me.host = host_name();
  std::vector<std::string> failures;
  me.gemm_gflops = gemm_gflops(o.gemm_size);
  me.exchange_gbs = exchange_gbs(comm, o.exchange_mb);
  PreflightReport report;
  report.allreduce_busbw_gbs = allreduce_busbw_gbs(comm, o.allreduce_mb);
  try {
    std::tie(me.write_mbs, me.read_mbs) = checkpoint_dir_io(cfg.output_dir, rank, o.io_mb);
  } catch (const std::exception& e) {
    failures.push_back(e.what());
  }
  try {
    // The data-parallel coordinates training will use (ranks of one TP group read the same batches).
    parallel::ProcessGrid grid(comm, static_cast<int>(cfg.tp), static_cast<int>(cfg.dp));
    me.shards = check_shards(cfg, grid.dp_rank(), grid.dp_size());
  } catch (const std::exception& e) {
    me.shards = "failed";
    failures.push_back(std::string("shards: ") + e.what());
  }
  me.failed = !failures.empty();
  for (const std::string& f : failures) me.problem += (me.problem.empty() ? "" : "; ") + f;

  // Every row to rank 0, which judges them.
  const std::string mine = encode_row(me);
  int length = static_cast<int>(mine.size());
  std::vector<int> lengths(size), offsets(size);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, comm);
  std::string all;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) offsets[r] = r ? offsets[r - 1] + lengths[r - 1] : 0;
    all.resize(static_cast<size_t>(offsets[size - 1] + lengths[size - 1]));
  }
  MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0, comm);
  int ok = 1;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) report.rows.push_back(decode_row(all.substr(offsets[r], lengths[r])));
    std::vector<double> gemm, exchange, write;
    for (const PreflightRow& r : report.rows) {
      gemm.push_back(r.gemm_gflops);
      exchange.push_back(r.exchange_gbs);
      write.push_back(r.write_mbs);
    }
    report.expect_gflops = o.expect_gflops > 0 ? o.expect_gflops : median(gemm);
    report.expect_exchange_gbs = median(exchange);
    report.expect_write_mbs = o.expect_write_mbs;
    std::set<std::string> bad;
    for (PreflightRow& r : report.rows) {
      std::vector<std::string> slow;
      auto judge = [&](double value, double expected, const char* what) {
        if (expected > 0 && o.slow_fraction > 0 && value < o.slow_fraction * expected)
          slow.push_back(std::string(what) + " at " + fixed(100 * value / expected, 0) + "% of " + fixed(expected, 1));
      };
      judge(r.gemm_gflops, report.expect_gflops, "GEMM");
      judge(r.exchange_gbs, report.expect_exchange_gbs, "exchange");
      if (!r.failed) judge(r.write_mbs, report.expect_write_mbs, "checkpoint write");
      r.slow = !slow.empty();
      for (const std::string& s : slow) r.problem += (r.problem.empty() ? "" : "; ") + s;
      if (r.failed || r.slow) bad.insert(r.host);
    }
    report.bad_hosts.assign(bad.begin(), bad.end());
    ok = report.bad_hosts.empty();
  } else {
    report.rows.push_back(me);
  }
  // Every rank learns the verdict, so that all of them exit alike.
  MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
  if (rank != 0 && !ok) report.bad_hosts.push_back("(see rank 0)");
  return report;
}

std::string format_preflight(const PreflightReport& report) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-5s %-20s %10s %10s %10s %10s  %-28s %s\n", "rank", "host", "GEMM GF/s",
                "xchg GB/s", "write MB/s", "read MB/s", "shards (first, last)", "verdict");
  out << line;
  for (const PreflightRow& r : report.rows) {
    const std::string verdict = r.failed ? "failed: " + r.problem : r.slow ? "slow: " + r.problem : "OK";
    std::snprintf(line, sizeof line, "%-5d %-20s %10.1f %10.2f %10.0f %10.0f  %-28s %s\n", r.rank, r.host.c_str(),
                  r.gemm_gflops, r.exchange_gbs, r.write_mbs, r.read_mbs, r.shards.c_str(), verdict.c_str());
    out << line;
  }
  std::snprintf(line, sizeof line,
                "expected: GEMM %.1f GFLOP/s, exchange %.2f GB/s, checkpoint write %s; ring all-reduce bus "
                "bandwidth %.2f GB/s over %zu ranks\n",
                report.expect_gflops, report.expect_exchange_gbs,
                report.expect_write_mbs > 0 ? (fixed(report.expect_write_mbs, 0) + " MB/s").c_str() : "not judged",
                report.allreduce_busbw_gbs, report.rows.size());
  out << line;
  if (report.ok()) {
    out << "preflight: OK\n";
  } else {
    std::string hosts;
    for (const std::string& h : report.bad_hosts) hosts += (hosts.empty() ? "" : ",") + h;
    out << "preflight: bad hosts: " << hosts << " (resubmit with sbatch --exclude=" << hosts << ")\n";
  }
  return out.str();
}

}  // namespace starflow::jobs
