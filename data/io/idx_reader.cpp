// IDX reader and writer. zlib's gzread reads gzip and plain files alike, so one code path serves both;
// data are read in bounded chunks so that a corrupt header claiming billions of images fails on the
// missing bytes instead of on a giant allocation.
#include "data/io/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <string>
#include <system_error>

#include "core/io/files.h"


namespace starflow::data {

using core::io::commit_temporary;
using core::io::errno_text;
using core::io::fail_file;
using core::io::temporary_path_for;

namespace fs = std::filesystem;

namespace {

constexpr uint8_t kUnsignedByteType = 0x08;
constexpr uint32_t kMaxSide = 1u << 16;  // no IDX image set comes close; guards the size arithmetic
constexpr uint32_t kMaxCount = 1u << 31;
constexpr size_t kReadChunk = size_t{16} << 20;

// Owns a zlib gzFile.
class GzFile {
 public:
  GzFile(const fs::path& path, const char* mode) : path_(path) {
    errno = 0;
    file_ = gzopen(path.c_str(), mode);
    if (!file_) fail_file(path, std::string("cannot open: ") + (errno ? errno_text(errno) : "out of memory"));
    gzbuffer(file_, 1 << 17);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  ~GzFile() {
    if (file_) gzclose(file_);
  }

  // Reads up to `size` bytes; returns how many were read (fewer only at the end of the data).
  size_t read(uint8_t* destination, size_t size) {
    size_t done = 0;
    while (done < size) {
      const unsigned request = static_cast<unsigned>(std::min<size_t>(size - done, INT_MAX));
      const int n = gzread(file_, destination + done, request);
      if (n < 0) fail_file(path_, "corrupt gzip data (" + zlib_message() + ")");
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  // Why the data ended early: zlib knows when the gzip stream itself was cut short.
  std::string end_reason() {
    int code = Z_OK;
    gzerror(file_, &code);
    return code == Z_BUF_ERROR ? " (the gzip stream is cut short)" : "";
  }

  void write(const uint8_t* source, size_t size) {
    size_t done = 0;
    while (done < size) {
      const unsigned request = static_cast<unsigned>(std::min<size_t>(size - done, INT_MAX));
      const int n = gzwrite(file_, source + done, request);
      if (n <= 0) fail_file(path_, "write failed (" + zlib_message() + ")");
      done += static_cast<size_t>(n);
    }
  }

  // Closes now so that the final flush's error is seen (the destructor cannot report it).
  void close() {
    const int status = gzclose(file_);
    file_ = nullptr;
    if (status != Z_OK) fail_file(path_, "close failed (zlib status " + std::to_string(status) + ")");
  }

 private:
  std::string zlib_message() {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    if (code == Z_ERRNO) return errno_text(errno);
    return message ? message : "unknown zlib error";
  }

  fs::path path_;
  gzFile file_ = nullptr;
};

uint32_t big_endian_u32(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

void put_big_endian_u32(uint32_t value, uint8_t* bytes) {
  bytes[0] = static_cast<uint8_t>(value >> 24);
  bytes[1] = static_cast<uint8_t>(value >> 16);
  bytes[2] = static_cast<uint8_t>(value >> 8);
  bytes[3] = static_cast<uint8_t>(value);
}

// Reads the magic number and dimensions, checking them against what the caller expects.
std::vector<uint32_t> read_header(GzFile& file, const fs::path& path, size_t expected_dims, const char* kind) {
  uint8_t magic[4];
  const size_t got = file.read(magic, 4);
  if (got < 4) fail_file(path, "not an IDX file: only " + std::to_string(got) + " bytes" + file.end_reason());
  if (magic[0] != 0 || magic[1] != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08X", big_endian_u32(magic));
    fail_file(path, std::string("not an IDX file (magic number ") + hex + ")");
  }
  if (magic[2] != kUnsignedByteType) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", magic[2]);
    fail_file(path, std::string("unsupported IDX element type ") + hex + "; only unsigned bytes (0x08) are read");
  }
  if (magic[3] != expected_dims)
    fail_file(path, "has " + std::to_string(magic[3]) + " dimensions; an IDX " + kind + " file has " +
                        std::to_string(expected_dims));
  std::vector<uint32_t> dims(expected_dims);
  for (uint32_t& d : dims) {
    uint8_t bytes[4];
    if (file.read(bytes, 4) < 4) fail_file(path, "truncated IDX header" + file.end_reason());
    d = big_endian_u32(bytes);
  }
  if (dims[0] > kMaxCount) fail_file(path, "implausible item count " + std::to_string(dims[0]));
  for (size_t i = 1; i < dims.size(); ++i)
    if (dims[i] == 0 || dims[i] > kMaxSide) fail_file(path, "implausible image side " + std::to_string(dims[i]));
  return dims;
}

// Reads exactly `size` payload bytes and checks that nothing follows them.
std::vector<uint8_t> read_payload(GzFile& file, const fs::path& path, uint64_t size, const std::string& what) {
  std::vector<uint8_t> data;
  uint64_t filled = 0;
  while (filled < size) {
    const uint64_t next = std::min<uint64_t>(size, filled + kReadChunk);
    data.resize(next);
    const size_t got = file.read(data.data() + filled, next - filled);
    filled += got;
    if (filled < next)
      fail_file(path, "truncated: " + what + " need " + std::to_string(size) + " bytes, the file has " +
                          std::to_string(filled) + file.end_reason());
  }
  uint8_t extra;
  if (file.read(&extra, 1) != 0) fail_file(path, "unexpected data after the " + what);
  return data;
}

fs::path existing_variant(const fs::path& dir, const std::string& stem) {
  const fs::path plain = dir / stem;
  const fs::path gz = dir / (stem + ".gz");
  std::error_code error;
  if (fs::exists(plain, error)) return plain;
  if (fs::exists(gz, error)) return gz;
  fail_file(plain, "not found (nor " + gz.filename().string() + "); Debian's dataset-fashion-mnist installs it");
}

bool wants_gzip(const fs::path& path) { return path.extension() == ".gz"; }

// Writes the header and payload to a temporary file, then renames it into place.
void write_idx(const fs::path& path, const std::vector<uint32_t>& dims, const uint8_t* data, size_t size) {
  const fs::path temporary = temporary_path_for(path);
  try {
    GzFile file(temporary, wants_gzip(path) ? "wb9" : "wbT");
    std::vector<uint8_t> header(4 + 4 * dims.size());
    header[2] = kUnsignedByteType;
    header[3] = static_cast<uint8_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) put_big_endian_u32(dims[i], header.data() + 4 + 4 * i);
    file.write(header.data(), header.size());
    file.write(data, size);
    file.close();
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail_file(path, std::string("cannot write: ") + e.what());
  }
  commit_temporary(temporary, path);
}

}  // namespace

core::Tensor<uint8_t> read_idx_images(const fs::path& path) {
  GzFile file(path, "rb");
  const std::vector<uint32_t> dims = read_header(file, path, 3, "images");
  core::Tensor<uint8_t> images;
  images.shape = {dims[0], dims[1], dims[2]};
  const uint64_t size = uint64_t{dims[0]} * dims[1] * dims[2];
  images.data =
      read_payload(file, path, size,
                   std::to_string(dims[0]) + " images of " + std::to_string(dims[1]) + "x" + std::to_string(dims[2]));
  return images;
}

std::vector<uint8_t> read_idx_labels(const fs::path& path) {
  GzFile file(path, "rb");
  const std::vector<uint32_t> dims = read_header(file, path, 1, "labels");
  return read_payload(file, path, dims[0], std::to_string(dims[0]) + " labels");
}

LabeledImages read_idx_dataset(const fs::path& images_path, const fs::path& labels_path) {
  LabeledImages set;
  set.images = read_idx_images(images_path);
  set.labels = read_idx_labels(labels_path);
  if (static_cast<int64_t>(set.labels.size()) != set.images.shape[0])
    fail_file(labels_path, "has " + std::to_string(set.labels.size()) + " labels but " + images_path.string() +
                               " has " + std::to_string(set.images.shape[0]) + " images");
  for (uint8_t label : set.labels) set.n_classes = std::max<int64_t>(set.n_classes, int64_t{label} + 1);
  return set;
}

LabeledImages read_fashion_mnist(FashionMnistSplit split, const fs::path& dir) {
  const std::string prefix = split == FashionMnistSplit::kTrain ? "train" : "t10k";
  const fs::path images_path = existing_variant(dir, prefix + "-images-idx3-ubyte");
  const fs::path labels_path = existing_variant(dir, prefix + "-labels-idx1-ubyte");
  LabeledImages set = read_idx_dataset(images_path, labels_path);
  const auto names = fashion_mnist_class_names();
  for (size_t i = 0; i < set.labels.size(); ++i)
    if (set.labels[i] >= names.size())
      fail_file(labels_path, "label " + std::to_string(set.labels[i]) + " of item " + std::to_string(i) +
                                 " is not a Fashion-MNIST class (0..9)");
  set.n_classes = static_cast<int64_t>(names.size());
  return set;
}

const std::array<std::string_view, 10>& fashion_mnist_class_names() {
  static constexpr std::array<std::string_view, 10> kNames = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return kNames;
}

void write_idx_images(const fs::path& path, const core::Tensor<uint8_t>& images) {
  if (images.shape.size() != 3 || images.shape[0] < 0 || images.shape[0] > kMaxCount || images.shape[1] <= 0 ||
      images.shape[1] > kMaxSide || images.shape[2] <= 0 || images.shape[2] > kMaxSide ||
      images.size() != core::numel(images.shape))
    throw std::invalid_argument("write_idx_images: expected images [N, rows, cols], got " +
                                core::shape_string(images.shape) + " with " + std::to_string(images.size()) +
                                " values");
  const std::vector<uint32_t> dims = {static_cast<uint32_t>(images.shape[0]), static_cast<uint32_t>(images.shape[1]),
                                      static_cast<uint32_t>(images.shape[2])};
  write_idx(path, dims, images.ptr(), images.data.size());
}

void write_idx_labels(const fs::path& path, std::span<const uint8_t> labels) {
  if (labels.size() > kMaxCount) throw std::invalid_argument("write_idx_labels: too many labels");
  write_idx(path, {static_cast<uint32_t>(labels.size())}, labels.data(), labels.size());
}

}  // namespace starflow::data
