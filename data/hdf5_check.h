// The small layer every HDF5 call in data/ goes through: h5Check turns a failed call into one line naming
// the file, the call and HDF5's own innermost reason; Hdf5Lock serialises the library (Debian's parallel
// build is not thread-safe and the prefetch thread reads while the main thread may open shards) and keeps
// HDF5 from printing its error stack around ours; Hdf5Handle closes what it owns.
#pragma once
#include <hdf5.h>

#include <mutex>
#include <string>
#include <utility>

namespace starflow::data {

// Held around every region of HDF5 calls. Recursive so that helpers may lock again. It also switches off
// HDF5's automatic error-stack printing (our one-line errors say what matters) and leaves it off: HDF5
// 1.10.8 leaks internal state when a damaged object header fails to load, and with printing on it then
// writes "HDF5: infinite loop closing library" and a page of garbage at exit, after our clear error.
// All HDF5 use in the project is in data/, so nothing else relies on the printing.
// With a path, the lock also names the file for install_hdf5_crash_report while it is held (a lock without
// one, nested inside, keeps the enclosing file).
class Hdf5Lock {
 public:
  Hdf5Lock();
  explicit Hdf5Lock(const std::string& path);
  ~Hdf5Lock();
  Hdf5Lock(const Hdf5Lock&) = delete;
  Hdf5Lock& operator=(const Hdf5Lock&) = delete;

 private:
  std::unique_lock<std::recursive_mutex> lock_;
  bool names_file_ = false, restores_ = false;
  std::string enclosing_;  // the file of an enclosing lock on this thread, restored on release
};

// HDF5 1.10.8 can crash inside the library on a damaged file before any check of ours runs (FUZZING.md,
// "Open"). After this call, SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT on a thread that holds an Hdf5Lock with
// a path first writes one line naming the file ("starflow: rank R: SIGSEGV inside HDF5 on PATH: ..."), then
// goes on to the handler installed before it (Open MPI's backtrace) or the default action. Among thousands of
// shards, the line says which one to check. Install after MPI_Init, so that Open MPI's handlers are the ones
// chained to; rank < 0 leaves the rank out. Once per process (later calls only update the rank).
void install_hdf5_crash_report(int rank);

// HDF5's most specific message for the error it just reported ("truncated file: eof = ...", "data error
// detected by Fletcher32 checksum"), then clears its stack. "" if it recorded none.
std::string hdf5_error_detail();

[[noreturn]] void throw_hdf5_error(const std::string& path, const std::string& call_site);

// Negative ids and statuses mean failure for every HDF5 call we make.
template <class Status>
Status h5Check(Status status, const std::string& path, const std::string& call_site) {
  if (status < 0) throw_hdf5_error(path, call_site);
  return status;
}

// Owns one HDF5 identifier and closes it with the matching H5?close. Close failures in a destructor have
// nowhere to go; the reads and writes before them were checked.
class Hdf5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Hdf5Handle() = default;
  Hdf5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Hdf5Handle(Hdf5Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  Hdf5Handle& operator=(Hdf5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      closer_ = other.closer_;
    }
    return *this;
  }
  Hdf5Handle(const Hdf5Handle&) = delete;
  Hdf5Handle& operator=(const Hdf5Handle&) = delete;
  ~Hdf5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and reports the status (H5Fclose is where a writer's last buffered data reaches the disk).
  herr_t close() {
    herr_t status = 0;
    if (id_ >= 0) {
      Hdf5Lock lock;
      status = closer_(id_);
    }
    id_ = H5I_INVALID_HID;
    return status;
  }
  void reset() { close(); }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Checked constructors for the handle kinds we use: "<path>: H5Dopen2 /latents failed: <detail>".
Hdf5Handle checked_file(hid_t id, const std::string& path, const std::string& call_site);
Hdf5Handle checked_dataset(hid_t id, const std::string& path, const std::string& call_site);
Hdf5Handle checked_dataspace(hid_t id, const std::string& path, const std::string& call_site);
Hdf5Handle checked_datatype(hid_t id, const std::string& path, const std::string& call_site);
Hdf5Handle checked_property_list(hid_t id, const std::string& path, const std::string& call_site);
Hdf5Handle checked_attribute(hid_t id, const std::string& path, const std::string& call_site);

}  // namespace starflow::data
