// Latent shards: round trips of every conditioning and storage type, the temporary-name protocol, files that
// h5py and h5ls open, and one-line errors for truncated, corrupt and inconsistent shards.
#include <hdf5.h>

#include <filesystem>
#include <string>

#include "data/shard_dataset.h"
#include "shard_test_util.h"

using namespace starflow::data;
using namespace starflow::data::testing_util;

namespace {

class LatentShardTest : public ShardDirectoryTest {};

void expect_round_trip(const std::string& path, const ShardHeader& h, int64_t count) {
  write_shard(path, h, /*first_id=*/100, count, /*per_append=*/5);
  const LatentShardReader reader = open_shard(path);
  const ShardHeader& got = reader.header();
  EXPECT_TRUE(got.same_content_as(h)) << got.describe();
  EXPECT_EQ(got.latent_type, h.latent_type);
  EXPECT_EQ(got.text_type, h.text_type);
  EXPECT_EQ(got.has_captions, h.has_captions);
  EXPECT_EQ(got.source, h.source);
  EXPECT_EQ(got.num_samples, count);
  const SampleBatch all = reader.read(0, count, /*with_captions=*/true);
  ASSERT_EQ(all.size(), count);
  EXPECT_EQ(all.latents.shape, (starflow::core::Shape{count, 2, 3, 3}));
  for (int64_t s = 0; s < count; ++s) expect_sample(h, all, s, 100 + s);
  const SampleBatch middle = reader.read(4, 7);  // crosses append boundaries
  for (int64_t s = 0; s < 7; ++s) expect_sample(h, middle, s, 104 + s);
  EXPECT_TRUE(middle.captions.empty());  // not asked for
}

TEST_F(LatentShardTest, RoundTripFloat32LabelsIsExact) {
  expect_round_trip(file("labels.h5"), tiny_header(Conditioning::ClassLabels, StorageType::Float32, true), 13);
}

TEST_F(LatentShardTest, RoundTripFloat16TextWithinRounding) {
  const ShardHeader h = tiny_header(Conditioning::TextEmbeddings, StorageType::Float16, true);
  expect_round_trip(file("text.h5"), h, 12);
  // expect_sample compares with our own float16 rounding; also bound it against the original values.
  const SampleBatch batch = open_shard(file("text.h5")).read(0, 12);
  for (int64_t s = 0; s < 12; ++s)
    for (int64_t i = 0; i < h.latent_numel(); ++i) {
      const float original = latent_value(100 + s, i);
      EXPECT_LE(std::abs(batch.latents.data[s * h.latent_numel() + i] - original), std::abs(original) * 0x1p-11f);
    }
}

TEST_F(LatentShardTest, RoundTripUnconditionalUncompressed) {
  const ShardHeader h = tiny_header(Conditioning::None, StorageType::Float16);
  LatentShardWriter writer(file("plain.h5"), h, ShardWriterOptions{.gzip_level = 0, .chunk_target_bytes = 1});
  writer.append(make_samples(h, 0, 3));
  writer.append(make_samples(h, 3, 0));  // empty appends are fine
  writer.finish();
  const LatentShardReader reader(file("plain.h5"));
  const SampleBatch all = reader.read(0, 3);
  EXPECT_TRUE(all.labels.empty());
  EXPECT_TRUE(all.text_embeddings.data.empty());
  for (int64_t s = 0; s < 3; ++s) expect_sample(h, all, s, s);
}

TEST_F(LatentShardTest, EmptyShardIsValid) {
  write_shard(file("empty.h5"), tiny_header(Conditioning::ClassLabels), 0, 0);
  EXPECT_EQ(open_shard(file("empty.h5")).num_samples(), 0);
}

TEST_F(LatentShardTest, TemporaryFileInvisibleUntilFinish) {
  const ShardHeader h = tiny_header(Conditioning::ClassLabels);
  LatentShardWriter writer(file("shard.h5"), h);
  EXPECT_EQ(writer.temporary_path(), file("shard.h5") + ".tmp." + std::to_string(::getpid()));
  writer.append(make_samples(h, 0, 4));
  EXPECT_TRUE(fs::exists(writer.temporary_path()));
  EXPECT_FALSE(fs::exists(file("shard.h5")));
  EXPECT_THROW(find_shards(dir_.string()), std::runtime_error);  // readers do not see it either
  writer.finish();
  EXPECT_TRUE(fs::exists(file("shard.h5")));
  EXPECT_FALSE(fs::exists(writer.temporary_path()));
  EXPECT_EQ(open_shard(file("shard.h5")).num_samples(), 4);
}

TEST_F(LatentShardTest, WriterDestroyedWithoutFinishLeavesNothing) {
  const ShardHeader h = tiny_header(Conditioning::ClassLabels);
  std::string temporary;
  {
    LatentShardWriter writer(file("cancelled.h5"), h);
    temporary = writer.temporary_path();
    writer.append(make_samples(h, 0, 4));
    EXPECT_TRUE(fs::exists(temporary));
  }
  EXPECT_FALSE(fs::exists(temporary));
  EXPECT_FALSE(fs::exists(file("cancelled.h5")));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(LatentShardTest, WriterRejectsBadBatchAndKeepsEarlierSamples) {
  const ShardHeader h = tiny_header(Conditioning::ClassLabels);
  const std::string path = file("checked.h5");
  LatentShardWriter writer(path, h);
  writer.append(make_samples(h, 0, 3));
  SampleBatch bad = make_samples(h, 3, 2);
  bad.labels[1] = 10;  // num_classes is 10
  EXPECT_NE(one_line_error(path, [&] { writer.append(bad); }).find("outside [0, 10)"), std::string::npos);
  bad = make_samples(h, 3, 2);
  bad.latents.data.pop_back();
  EXPECT_NE(one_line_error(path, [&] { writer.append(bad); }).find("latents has 35 values, expected 36"),
            std::string::npos);
  writer.finish();
  EXPECT_EQ(open_shard(path).num_samples(), 3);
}

TEST_F(LatentShardTest, WriterRejectsInconsistentHeader) {
  ShardHeader h = tiny_header(Conditioning::ClassLabels);
  h.num_classes = 0;
  one_line_error(file("a.h5"), [&] { LatentShardWriter(file("a.h5"), h); });
  h = tiny_header(Conditioning::TextEmbeddings);
  h.text_encoder = "none";
  one_line_error(file("b.h5"), [&] { LatentShardWriter(file("b.h5"), h); });
  h = tiny_header(Conditioning::None);
  h.latent_shape = {4, 8};
  one_line_error(file("c.h5"), [&] { LatentShardWriter(file("c.h5"), h); });
  EXPECT_TRUE(fs::is_empty(dir_));
}

// The files are for people too: Python users open them with h5py and see the documented layout (version 2:
// the valid text rows back to back, their counts, the null caption once; bfloat16 read through astype).
TEST_F(LatentShardTest, H5pyAndH5lsOpenShard) {
  ShardHeader h = tiny_header(Conditioning::TextEmbeddings, StorageType::Float16, true);
  h.text_type = StorageType::BFloat16;
  h.has_latent_logvar = true;
  h.null_text = {0.5f, -0.25f, 1.f, 2.f, -3.f};  // one row of E = 5
  const std::string path = file("for_python.h5");
  LatentShardWriter writer(path, h);
  SampleBatch samples = make_samples(h, 100, 13);
  for (size_t i = 0; i < samples.latent_logvar.data.size(); ++i) samples.latent_logvar.data[i] = -1.f - 0.01f * i;
  writer.append(samples);
  writer.finish();
  const std::string script =
      "import sys, h5py, numpy as np\n"
      "f = h5py.File(sys.argv[1], \"r\")\n"
      "a = f.attrs\n"
      "for name in [\"latents\", \"latent_logvar\", \"text_tokens\", \"text_lengths\", \"null_text\", \"sample_ids\", \"captions\"]:\n"
      "    print(name, f[name].shape, f[name].dtype if name != \"captions\" else h5py.check_string_dtype(f[name].dtype).encoding)\n"
      "print(a[\"format\"], a[\"format_version\"], list(a[\"latent_shape\"]), a[\"autoencoder\"], a[\"scaling_factor\"],\n"
      "      a[\"text_encoder\"], a[\"text_length\"], a[\"num_classes\"], a[\"num_samples\"], a[\"source\"])\n"
      "lengths = f[\"text_lengths\"][:]\n"
      "start = int(np.sum(lengths[:2]))\n"
      "tokens = f[\"text_tokens\"].astype(\"float32\")[start:start + lengths[2]]\n"
      "print(\"%.9g %.9g %.9g\" % (f[\"latents\"][1, 0, 2, 1], tokens[0, 4], f[\"latent_logvar\"][0, 0, 0, 1]),\n"
      "      f[\"sample_ids\"][12], f[\"captions\"].asstr()[5], list(lengths[:5]),\n"
      "      list(f[\"null_text\"].astype(\"float32\")[0]))\n";
  int status = 0;
  const std::string output = run_command("/usr/bin/python3 -c '" + script + "' " + path, status);
  ASSERT_EQ(status, 0) << output;
  char values[96];
  std::snprintf(values, sizeof values, "%.9g %.9g %.9g", stored(latent_value(101, 0 * 9 + 2 * 3 + 1), h.latent_type),
                stored(text_value(102, 4), h.text_type), stored(-1.01f, h.latent_type));
  EXPECT_EQ(output,
            "latents (13, 2, 3, 3) float16\n"
            "latent_logvar (13, 2, 3, 3) float16\n"
            "text_tokens (" + std::to_string(1 + 2 + 3 + 4 + 1 + 2 + 3 + 4 + 1 + 2 + 3 + 4 + 1) + ", 5) float32\n"  // h5py presents bfloat16 as float32
            "text_lengths (13,) int64\n"
            "null_text (1, 5) float32\n"
            "sample_ids (13,) int64\n"
            "captions (13,) utf-8\n"
            "starflow-latent-shard 2 [2, 3, 3] tiny-ae 0.5 wink-sg-100d 4 0 13 unit test\n" +
                std::string(values) + " 112 " + caption(105) + " [1, 2, 3, 4, 1] [0.5, -0.25, 1.0, 2.0, -3.0]\n");

  const std::string listing = run_command("h5ls -r " + path, status);
  ASSERT_EQ(status, 0) << listing;
  EXPECT_NE(listing.find("Dataset {13/Inf, 2, 3, 3}"), std::string::npos) << listing;
  EXPECT_NE(listing.find("/text_tokens"), std::string::npos) << listing;
}

// Text rows are stored unpadded: the file holds each sample's valid rows only, a bfloat16 shard reads back the
// bfloat16-rounded values, and masks that are not a prefix of ones are refused.
TEST_F(LatentShardTest, UnpaddedTextAndPosteriorRoundTrip) {
  ShardHeader h = tiny_header(Conditioning::TextEmbeddings, StorageType::Float32, true);
  h.text_type = StorageType::BFloat16;
  h.has_latent_logvar = true;
  h.null_text = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f, 10.f};  // two rows
  const std::string path = file("v2.h5");
  LatentShardWriter writer(path, h);
  SampleBatch in = make_samples(h, 7, 9);
  for (size_t i = 0; i < in.latent_logvar.data.size(); ++i) in.latent_logvar.data[i] = 0.1f * float(i % 17) - 0.8f;
  writer.append(in);
  SampleBatch bad = make_samples(h, 16, 1);
  bad.text_mask.data = {1, 0, 1, 0};
  EXPECT_NE(one_line_error(path, [&] { writer.append(bad); }).find("a valid token after padding"), std::string::npos);
  writer.finish();
  const LatentShardReader reader(path);
  EXPECT_TRUE(reader.header().same_content_as(h)) << reader.header().describe();
  EXPECT_EQ(reader.header().null_text_rows(), 2);
  const SampleBatch out = reader.read(0, 9);
  for (int64_t s = 0; s < 9; ++s) expect_sample(h, out, s, 7 + s);
  EXPECT_EQ(out.latent_logvar.data, in.latent_logvar.data);
  // The middle of the shard alone reads the same rows.
  const SampleBatch middle = reader.read(3, 4);
  for (int64_t s = 0; s < 4; ++s) expect_sample(h, middle, s, 10 + s);
}

// Version 1 shards (padded text with a mask), as an earlier starflow or h5py wrote them, still read.
TEST_F(LatentShardTest, Version1TextShardsStillRead) {
  const std::string path = file("v1.h5");
  const std::string script =
      "import sys, h5py, numpy as np\n"
      "f = h5py.File(sys.argv[1], \"w\", libver=(\"v110\", \"v110\"))\n"
      "for k, v in dict(format=\"starflow-latent-shard\", autoencoder=\"ae\", text_encoder=\"wv\", source=\"py\").items(): f.attrs[k] = v\n"
      "f.attrs[\"format_version\"] = np.int64(1); f.attrs[\"scaling_factor\"] = 0.5\n"
      "f.attrs[\"latent_shape\"] = np.array([1, 2, 2], np.int64); f.attrs[\"num_classes\"] = np.int64(0); f.attrs[\"num_samples\"] = np.int64(3)\n"
      "f.create_dataset(\"latents\", data=np.arange(12, dtype=np.float32).reshape(3, 1, 2, 2), maxshape=(None, 1, 2, 2), chunks=(1, 1, 2, 2))\n"
      "f.create_dataset(\"sample_ids\", data=np.arange(3, dtype=np.int64), maxshape=(None,), chunks=(3,))\n"
      "f.create_dataset(\"text_embeddings\", data=np.arange(18, dtype=np.float16).reshape(3, 3, 2), maxshape=(None, 3, 2), chunks=(1, 3, 2))\n"
      "f.create_dataset(\"text_mask\", data=np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], np.uint8), maxshape=(None, 3), chunks=(3, 3))\n";
  int status = 0;
  const std::string output = run_command("/usr/bin/python3 -c '" + script + "' " + path, status);
  ASSERT_EQ(status, 0) << output;
  const LatentShardReader reader(path);
  EXPECT_EQ(reader.header().text_length, 3);
  EXPECT_EQ(reader.header().text_dim, 2);
  EXPECT_TRUE(reader.header().null_text.empty());
  const SampleBatch b = reader.read(0, 3);
  EXPECT_EQ(b.text_embeddings.data[1 * 6 + 2], 8.f);  // padded v1 rows are returned as stored
  EXPECT_EQ(b.text_mask.data, (std::vector<uint8_t>{1, 0, 0, 1, 1, 0, 1, 1, 1}));
  EXPECT_EQ(b.latents.data[5], 5.f);
}

TEST_F(LatentShardTest, MissingAndForeignFilesGiveOneLine) {
  EXPECT_NE(one_line_error(file("absent.h5"), [&] { open_shard(file("absent.h5")); }).find("No such file"),
            std::string::npos);
  write_bytes(file("text.h5"), std::vector<char>(4096, 'x'));
  EXPECT_NE(one_line_error(file("text.h5"), [&] { open_shard(file("text.h5")); }).find("not an HDF5 file"),
            std::string::npos);
  // A valid HDF5 file that is not a shard.
  const hid_t other = H5Fcreate(file("other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(other, 0);
  H5Fclose(other);
  EXPECT_NE(one_line_error(file("other.h5"), [&] { open_shard(file("other.h5")); }).find("not a starflow latent shard"),
            std::string::npos);
}

TEST_F(LatentShardTest, TruncatedShardGivesOneLine) {
  const std::string path = file("whole.h5");
  write_shard(path, tiny_header(Conditioning::ClassLabels, StorageType::Float16, true), 0, 40);
  const std::vector<char> bytes = read_bytes(path);
  for (const size_t keep : {bytes.size() / 2, bytes.size() - 1, size_t(100), size_t(8)}) {
    const std::string cut = file("cut_" + std::to_string(keep) + ".h5");
    write_bytes(cut, std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep)));
    const std::string message = one_line_error(cut, [&] { open_shard(cut).read(0, 40); });
    SCOPED_TRACE(message);
    if (keep > 8) {
      EXPECT_NE(message.find("truncated"), std::string::npos);
    }
  }
}

// Where HDF5 keeps an object: its header (metadata) and the first chunk of a dataset (sample data).
struct Locations {
  haddr_t latents_header = 0;
  haddr_t first_chunk = 0;
};

Locations locate_latents(const std::string& path) {
  Locations where;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, "/latents", H5P_DEFAULT);
  H5O_info_t info;
  EXPECT_GE(H5Oget_info2(d, &info, H5O_INFO_BASIC), 0);
  where.latents_header = info.addr;
  hsize_t offset[4];
  unsigned filter_mask = 0;
  hsize_t size = 0;
  const hid_t space = H5Dget_space(d);
  EXPECT_GE(H5Dget_chunk_info(d, space, 0, offset, &filter_mask, &where.first_chunk, &size), 0);
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return where;
}

TEST_F(LatentShardTest, CorruptShardGivesOneLine) {
  const std::string path = file("good.h5");
  const ShardHeader h = tiny_header(Conditioning::ClassLabels, StorageType::Float16, true);
  write_shard(path, h, 0, 40);
  const Locations where = locate_latents(path);
  ASSERT_GT(where.latents_header, 0u);
  ASSERT_GT(where.first_chunk, 0u);
  struct Damage {
    const char* name;
    size_t offset;
    const char* expected;
  };
  for (const Damage& damage : {Damage{"signature", 0, "not an HDF5 file"}, Damage{"superblock", 12, "H5Fopen failed"},
                               Damage{"object_header", where.latents_header + 8, "/latents"},
                               Damage{"chunk", where.first_chunk + 4, "Fletcher32"}}) {
    const std::string damaged = file(std::string("damaged_") + damage.name + ".h5");
    fs::copy_file(path, damaged);
    flip_bytes(damaged, damage.offset, 4);
    const std::string message = one_line_error(damaged, [&] { open_shard(damaged).read(0, 40); });
    EXPECT_NE(message.find(damage.expected), std::string::npos) << damage.name << ": " << message;
  }
}

// Edits a shard in place with the C API, the way a buggy third-party writer might have left it.
void set_int_attribute(const std::string& path, const char* name, int64_t value) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Adelete(f, name), 0);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &value), 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Fclose(f);
}

TEST_F(LatentShardTest, InconsistentShardGivesOneLine) {
  const ShardHeader h = tiny_header(Conditioning::ClassLabels);
  const auto damaged = [&](const std::string& name, const char* attribute, int64_t value) {
    write_shard(file(name), h, 0, 7);
    set_int_attribute(file(name), attribute, value);
    return one_line_error(file(name), [&] { open_shard(file(name)); });
  };
  EXPECT_NE(damaged("v3.h5", "format_version", 3).find("format_version 3 is newer than this reader (2)"),
            std::string::npos);
  EXPECT_NE(damaged("count.h5", "num_samples", 8).find("/latents has shape [7, 2, 3, 3] but the attributes say [8, 2, 3, 3]"),
            std::string::npos);
  EXPECT_NE(damaged("classes.h5", "num_classes", 5).find("/labels[5] = 5 is outside [0, 5)"), std::string::npos);
  EXPECT_NE(damaged("both.h5", "num_classes", 0).find("has /labels but num_classes is 0"), std::string::npos);
}

}  // namespace
