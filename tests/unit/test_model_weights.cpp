// Weights under the official names (core/io/model_weights): export then import gives the same bits and the
// same config, for every parameter, including values a decimal round trip would change.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/io/model_weights.h"
#include "core/random.h"

using namespace starflow;

TEST(ModelWeights, ExportImportRoundTripIsBitExact) {
  core::FlowConfig c;
  c.in_channels = 4;
  c.img_size = 4;
  c.channels = 64;
  c.head_dim = 32;
  c.num_blocks = 3;
  c.layers_per_block = {1, 1, 2};
  c.txt_size = 3;
  c.txt_dim = 8;
  c.seq_order = core::SeqOrder::R2L;
  core::StarFlowModel<float> m(c);
  m.init_parameters(11);
  core::Rng r(12);
  for (float& p : m.parameters()) p += float(0.03 * r.normal());
  // Values that only an exact binary copy keeps: a subnormal, the largest float, negative zero (the first
  // view, blocks.0.sos_embed, starts at offset 0).
  m.parameters()[0] = std::numeric_limits<float>::denorm_min();
  m.parameters()[1] = std::numeric_limits<float>::max();
  m.parameters()[2] = -0.f;
  const std::string path = (std::filesystem::temp_directory_path() / "starflow_weights_round_trip.safetensors").string();
  core::io::save_weights(m, path, {{"step", "42"}});

  const core::io::SafeTensorsFile file = core::io::SafeTensorsFile::open(path);
  const core::FlowConfig back = core::io::read_config(file);
  EXPECT_EQ(back.to_official_json(), c.to_official_json());
  EXPECT_EQ(file.metadata_value("step"), "42");
  // One tensor per parameter and the official buffers, nothing else.
  EXPECT_EQ(file.names().size(), m.layout().views().size() + core::io::official_buffers(c).size());
  core::StarFlowModel<float> imported(back);
  core::io::load_weights(imported, file);
  ASSERT_EQ(imported.parameters().size(), m.parameters().size());
  // View by view (the flat buffer also holds the alignment padding between views, which is not a weight).
  int64_t compared = 0;
  for (const core::ParameterView& v : m.layout().views()) {
    EXPECT_EQ(std::memcmp(imported.parameters().data() + v.offset, m.parameters().data() + v.offset, v.size * sizeof(float)), 0)
        << v.name;
    compared += v.size;
  }
  EXPECT_EQ(compared, m.layout().parameter_count());
  EXPECT_TRUE(std::signbit(imported.parameters()[2]));
  std::filesystem::remove(path);
}

// The exported file is the complete official state_dict: exactly the names, shapes and buffer values the
// official model's state_dict() has, as the golden fixtures record it (their param.* entries), so PyTorch's
// load_state_dict(strict=True) accepts it.
TEST(ModelWeights, ExportIsTheCompleteOfficialStateDict) {
  for (const char* fixture : {"tiny_uncond", "tiny_text", "tiny_class", "tiny_patch2", "tiny_options_a",
                              "tiny_options_b", "tiny_options_nosos", "tiny_options_condall"}) {
    SCOPED_TRACE(fixture);
    const core::io::SafeTensorsFile golden =
        core::io::SafeTensorsFile::open(std::string(STARFLOW_GOLDEN_DIR) + "/" + fixture + ".safetensors");
    const core::FlowConfig c = core::FlowConfig::from_official_json(golden.metadata_value("config"));
    // The exported config reads back as the same model.
    EXPECT_EQ(core::FlowConfig::from_official_json(c.to_official_json()).to_official_json(), c.to_official_json());
    core::StarFlowModel<float> m(c);
    m.init_parameters(3);
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("starflow_state_dict_" + std::string(fixture) + ".safetensors")).string();
    core::io::save_weights(m, path);
    const core::io::SafeTensorsFile file = core::io::SafeTensorsFile::open(path);
    std::vector<std::string> official;
    for (const std::string& name : golden.names())
      if (name.rfind("param.", 0) == 0) official.push_back(name.substr(6));
    std::vector<std::string> ours = file.names();
    std::sort(official.begin(), official.end());
    std::sort(ours.begin(), ours.end());
    EXPECT_EQ(ours, official);
    for (const core::io::OfficialBuffer& b : core::io::official_buffers(c)) {
      EXPECT_EQ(file.info(b.name).shape, golden.info("param." + b.name).shape) << b.name;
      EXPECT_EQ(file.read<float>(b.name).data, golden.read<float>("param." + b.name).data) << b.name;
    }
    std::filesystem::remove(path);
  }
}
