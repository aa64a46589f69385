// HDF5 error reporting and locking for data/ (see hdf5_check.h for why each exists).
#include "data/hdf5_check.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

namespace starflow::data {

namespace {

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

// Walking upward starts at the most specific entry (where HDF5 noticed the problem); keep the first
// entry that says something.
herr_t keep_first_description(unsigned, const H5E_error2_t* entry, void* client_data) {
  auto* detail = static_cast<std::string*>(client_data);
  if (detail->empty() && entry->desc != nullptr && entry->desc[0] != '\0') *detail = entry->desc;
  return 0;
}

// HDF5's file drivers describe a failed system call as "file write failed: time = ..., filename = ..., file
// descriptor = 19, errno = 28, error message = 'No space left on device', buf = ..., offset = 0": the call and
// the system's reason are what a user needs ("file write failed: No space left on device").
std::string concise(const std::string& detail) {
  const size_t fields = detail.find(": time = ");
  const size_t message = detail.find("error message = '");
  if (fields == std::string::npos || message == std::string::npos) return detail;
  const size_t begin = message + 17, end = detail.find('\'', begin);
  if (end == std::string::npos) return detail;
  return detail.substr(0, fields) + ": " + detail.substr(begin, end - begin);
}

// The file the thread in HDF5 works on, for the fatal-signal line: written only under the HDF5 lock, read by
// the signal handler of the thread that holds it (tid), so a crash elsewhere names no file.
constexpr size_t kContextPathMax = 1024;
char context_path[kContextPathMax];
std::atomic<size_t> context_length{0};
std::atomic<long> context_tid{0};
std::atomic<int> report_rank{-1};
struct sigaction chained[NSIG];
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

long this_thread_id() { return syscall(SYS_gettid); }

void set_context(const std::string& path) {
  context_tid.store(0);  // no reader sees a half-written path
  const size_t n = std::min(path.size(), kContextPathMax);
  std::memcpy(context_path, path.data(), n);
  context_length.store(n);
  context_tid.store(this_thread_id());
}

// The line is assembled in one buffer and written with one write(2) (async-signal-safe, and a single write
// below PIPE_BUF is not interleaved with another rank's line on a shared pipe).
struct Line {
  char text[kContextPathMax + 256];
  size_t length = 0;
  void add(const char* s, size_t n) {
    n = std::min(n, sizeof text - length);
    std::memcpy(text + length, s, n);
    length += n;
  }
  void add(const char* s) { add(s, std::strlen(s)); }
  void add(int v) {
    char digits[16];
    int n = 0;
    do digits[sizeof digits - 1 - n++] = static_cast<char>('0' + v % 10);
    while ((v /= 10) > 0 && n < 15);
    add(digits + sizeof digits - n, static_cast<size_t>(n));
  }
};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
  }
  return "a fatal signal";
}

void on_fatal_signal(int sig, siginfo_t* info, void* context) {
  if (context_tid.load() == this_thread_id()) {
    Line line;
    line.add("starflow: ");
    if (const int rank = report_rank.load(); rank >= 0) {
      line.add("rank ");
      line.add(rank);
      line.add(": ");
    }
    line.add(signal_name(sig));
    line.add(" inside HDF5 on ");
    line.add(context_path, context_length.load());
    line.add(": the file is probably damaged (check it with h5dump, or write it again)\n");
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, line.text, line.length);
  }
  const struct sigaction& next = chained[sig];
  if ((next.sa_flags & SA_SIGINFO) && next.sa_sigaction != nullptr) {
    next.sa_sigaction(sig, info, context);
  } else if (!(next.sa_flags & SA_SIGINFO) && next.sa_handler != SIG_DFL && next.sa_handler != SIG_IGN) {
    next.sa_handler(sig);
  }
  // The chained handler returned (or there was none): end as the default action would.
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

Hdf5Lock::Hdf5Lock() : lock_(hdf5_mutex()) {
  // Every time, not once: another library may have switched printing back on. A failure here only costs
  // a noisier message.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

Hdf5Lock::Hdf5Lock(const std::string& path) : Hdf5Lock() {
  if (context_tid.load() == this_thread_id()) {
    enclosing_.assign(context_path, context_length.load());
    restores_ = true;
  }
  set_context(path);
  names_file_ = true;
}

Hdf5Lock::~Hdf5Lock() {
  if (!names_file_) return;
  if (restores_) set_context(enclosing_);
  else context_tid.store(0);
}

void install_hdf5_crash_report(int rank) {
  report_rank.store(rank);
  static std::atomic<bool> installed{false};
  if (installed.exchange(true)) return;
  for (const int sig : kFatalSignals) {
    struct sigaction action {};
    action.sa_sigaction = on_fatal_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO;
    sigaction(sig, &action, &chained[sig]);
  }
}

std::string hdf5_error_detail() {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_first_description, &detail);
  H5Eclear2(H5E_DEFAULT);
  detail = concise(detail);
  for (char& c : detail)  // our errors are one line
    if (c == '\n' || c == '\r') c = ' ';
  return detail;
}

void throw_hdf5_error(const std::string& path, const std::string& call_site) {
  const std::string detail = hdf5_error_detail();
  throw std::runtime_error(path + ": " + call_site + " failed" + (detail.empty() ? "" : ": " + detail));
}

Hdf5Handle checked_file(hid_t id, const std::string& path, const std::string& call_site) {
  return {h5Check(id, path, call_site), H5Fclose};
}
Hdf5Handle checked_dataset(hid_t id, const std::string& path, const std::string& call_site) {
  return {h5Check(id, path, call_site), H5Dclose};
}
Hdf5Handle checked_dataspace(hid_t id, const std::string& path, const std::string& call_site) {
  return {h5Check(id, path, call_site), H5Sclose};
}
Hdf5Handle checked_datatype(hid_t id, const std::string& path, const std::string& call_site) {
  return {h5Check(id, path, call_site), H5Tclose};
}
Hdf5Handle checked_property_list(hid_t id, const std::string& path, const std::string& call_site) {
  return {h5Check(id, path, call_site), H5Pclose};
}
Hdf5Handle checked_attribute(hid_t id, const std::string& path, const std::string& call_site) {
  return {h5Check(id, path, call_site), H5Aclose};
}

}  // namespace starflow::data
