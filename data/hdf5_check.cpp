// HDF5 error reporting and locking for data/ (see hdf5_check.h for why each exists).
#include "data/hdf5_check.h"

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

}  // namespace

Hdf5Lock::Hdf5Lock() : lock_(hdf5_mutex()) {
  // Every time, not once: another library may have switched printing back on. A failure here only costs
  // a noisier message.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
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
