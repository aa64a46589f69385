// A training checkpoint (jobs/checkpoint*.{h,cpp}, jobs/CHECKPOINT_FORMAT.md): preamble, trailer, header CRC,
// JSON header and tensor index through read_checkpoint_header (what `starflow inspect` and discovery read),
// then as resume and `starflow convert` use it: CheckpointReader over MPI_COMM_SELF (MPI started once, without
// a launcher), every tensor's shape, a whole read (CRC-checked) into a buffer of that shape, a partial read.
// The header's CRC-32 would stop nearly every mutation of the header, so the harness writes the right one into
// the trailer when the trailer's reserved last 4 bytes are zero (as the writer leaves them; the reader ignores
// them) and its offset and length fit the file; inputs with other reserved bytes keep their CRC as it is.
#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "jobs/checkpoint.h"
#include "jobs/checkpoint_format.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

std::vector<uint8_t> with_header_crc(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (size < 96) return bytes;
  uint8_t* trailer = bytes.data() + size - 32;
  uint64_t offset = 0, length = 0;
  uint32_t reserved = 1;
  std::memcpy(&offset, trailer + 8, 8);
  std::memcpy(&length, trailer + 16, 8);
  std::memcpy(&reserved, trailer + 28, 4);
  if (reserved != 0 || offset > size - 32 || length > size - 32 - offset) return bytes;
  const uint32_t crc = starflow::jobs::checkpoint_format::crc_of(bytes.data() + offset, length);
  std::memcpy(trailer + 24, &crc, 4);
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("OMPI_MCA_opal_signal", "", 1);  // Open MPI's crash handlers would take libFuzzer's (no reproducer)
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace starflow;
  const std::vector<uint8_t> bytes = with_header_crc(data, size);
  const std::string path = fuzz::as_file(bytes.data(), bytes.size(), "ckpt_00000001.sfckpt");
  fuzz::expect_clean_rejection(path, [&] {
    const jobs::CheckpointInfo info = jobs::read_checkpoint_header(path);
    // What inspect prints.
    uint64_t bytes = 0;
    for (const auto& t : info.header.at("tensors")) {
      bytes += t.at("bytes").get<uint64_t>();
      (void)t.at("name").get<std::string>();
      (void)t.at("shape").dump();
      (void)t.at("offset").get<uint64_t>();
      (void)t.at("crc32").get<std::string>();
    }
    (void)bytes;
    (void)info.header.at("meta").dump();
    const jobs::CheckpointReader reader(MPI_COMM_SELF, path);
    for (const auto& t : info.header.at("tensors")) {
      const std::string name = t.at("name").get<std::string>();
      if (!reader.has(name)) std::abort();
      const int64_t n = core::numel(reader.shape(name));
      std::vector<float> out(static_cast<size_t>(n));
      reader.read(name, out.data());
      if (n > 1) reader.read(name, out.data(), 1, n);
    }
  });
  return 0;
}
