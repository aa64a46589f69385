// Golden parity: every STARFlow fixture of tests/golden/data against the official PyTorch model's float64
// results, within the float32 tolerances of tests/golden/data/README.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <set>
#include <fstream>

#include "core/golden/golden_check.h"
#include "core/golden/golden_internal.h"
#include "core/io/safetensors.h"
#include "tests/golden/golden_fixtures.h"

using namespace starflow::core;

namespace {

std::string fixture(const std::string& name) { return starflow::testing::golden_fixture(name); }

class GoldenParity : public ::testing::TestWithParam<const char*> {};

}  // namespace

TEST_P(GoldenParity, EveryGroupWithinTolerance) {
  const golden::Report report = golden::check_file(fixture(GetParam()));
  std::set<std::string> ran;
  for (const auto& g : report.groups) {
    if (!g.ran) continue;
    ran.insert(g.group);
    EXPECT_TRUE(g.pass()) << g.group << ": max rel " << g.max_rel << " abs " << g.max_abs << " > " << g.tolerance
                          << " (" << g.metric << "), worst " << g.worst;
  }
  // The groups every fixture holds: training (forward, loss, gradients, AdamW) and sampling (sequential,
  // Jacobi tight and loose with their iteration counts, denoising).
  const std::string name = GetParam();
  const bool options = name.rfind("tiny_options_", 0) == 0, nosos = name == "tiny_options_nosos.safetensors";
  std::vector<std::string> required = {
      "forward.z", "forward.outputs", "forward.logdet", "loss.nll", "loss.z", "loss.logdet", "loss.latent_norm",
      "loss.total", "grad.<param>", "grad.input.x", "aux.rope.shallow", "aux.rope.top", "adamw1 (fixture grads)",
      "adamw1 (own grads)", "reverse.x", "reverse.seq", "denoise.x"};
  // Jacobi decoding, except without the SOS token (the official code has none there).
  if (!nosos)
    for (const char* g : {"reverse_jacobi.x", "reverse_jacobi iterations", "reverse_jacobi_loose.x",
                          "reverse_jacobi_loose iterations"})
      required.push_back(g);
  // Guided sampling in the conditional fixtures.
  if (name == "tiny_text.safetensors" || name == "tiny_class.safetensors" || options) {
    for (const char* g : {"reverse_cfg.x", "denoise_cfg.x"}) required.push_back(g);
    if (!nosos)
      for (const char* g : {"reverse_jacobi_cfg.x", "reverse_jacobi_cfg iterations", "reverse_jacobi_loose_cfg.x",
                            "reverse_jacobi_loose_cfg iterations"})
        required.push_back(g);
  }
  // The option fixtures (golden README §7): attention temperature, and nosos's identity block.
  if (options) required.push_back("reverse_attn_temp.x");
  if (nosos) required.push_back("forward.logdet (identity blocks)");
  // tiny_options_b's learnable self-denoiser: its prediction, target, loss, gradients, RoPE and sampling step.
  if (name == "tiny_options_b.safetensors")
    for (const char* g : {"denoiser.pred", "denoiser.target", "loss.denoiser", "grad.learnable_self_denoiser",
                          "aux.rope.denoiser", "denoise_learned.x", "denoise_learned_cfg.x"})
      required.push_back(g);
  for (const std::string& g : required) EXPECT_TRUE(ran.count(g)) << "group " << g << " did not run";
  for (const auto& g : report.groups) EXPECT_TRUE(g.ran) << "group " << g.group << " was not computed";
  std::cout << golden::format_report(report);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenParity,
                         ::testing::Values("tiny_uncond.safetensors", "tiny_text.safetensors",
                                           "tiny_patch2.safetensors", "tiny_class.safetensors",
                                           "tiny_options_a.safetensors", "tiny_options_b.safetensors",
                                           "tiny_options_nosos.safetensors",
                                           "tiny_options_condall.safetensors"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n.substr(0, n.find('.'));
                         });

// A fixture with a tensor removed or reshaped gives one clear error naming the tensor and expected shape.
namespace {
std::string rewrite_fixture(const std::string& src, const std::string& drop, const std::string& reshape) {
  const io::SafeTensorsFile in = io::SafeTensorsFile::open(src);
  std::vector<Tensor<double>> keep;
  std::vector<std::string> names;
  for (const std::string& n : in.names())
    if (n != drop) names.push_back(n);
  keep.reserve(names.size());
  std::vector<io::TensorToWrite> out;
  for (const std::string& n : names) {
    keep.push_back(in.read<double>(n));
    Tensor<double>& t = keep.back();
    if (n == reshape) t.shape = {t.size()};  // flatten: same data, wrong shape
    out.push_back({n, "F64", t.shape, t.data.data(), t.data.size() * sizeof(double)});
  }
  const std::string path = (std::filesystem::temp_directory_path() / ("starflow_bad_fixture_" + drop + reshape +
                                                                      ".safetensors")).string();
  io::write_safetensors(path, out, in.metadata());
  return path;
}
}  // namespace

TEST(GoldenBadInput, MissingTensorIsNamed) {
  const std::string path = rewrite_fixture(fixture("tiny_uncond.safetensors"), "param.blocks.1.proj_in.weight", "");
  try {
    golden::check_file(path);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("param.blocks.1.proj_in.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(GoldenBadInput, WrongShapeNamesExpectedShape) {
  const std::string path = rewrite_fixture(fixture("tiny_uncond.safetensors"), "", "param.blocks.0.proj_out.weight");
  try {
    golden::check_file(path);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("param.blocks.0.proj_out.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, 64]"), std::string::npos) << msg;
  }
  std::filesystem::remove(path);
}

// The Jacobi iteration counts: exact for the loose settings, each chunk within [block size, max_iter] for the
// tight ones (float32 may stop an iteration earlier than float64, or run on), the same chunks in both.
TEST(GoldenIterationCounts, TightWithinBoundsLooseExact) {
  SampleOptions tight;
  tight.jacobi_block_size = 8;
  tight.jacobi_max_iter = 16;
  const std::vector<std::vector<int64_t>> reference = {{9, 9}, {9, 9}};
  const auto check = [&](const std::vector<std::vector<int64_t>>& ours, const SampleOptions* t) {
    return golden::iteration_count_group("g", ours, reference, t).pass();
  };
  EXPECT_TRUE(check({{9, 9}, {9, 9}}, &tight));
  EXPECT_TRUE(check({{8, 16}, {9, 8}}, &tight));
  EXPECT_FALSE(check({{7, 9}, {9, 9}}, &tight));
  EXPECT_FALSE(check({{9, 17}, {9, 9}}, &tight));
  EXPECT_FALSE(check({{9, 9}, {9}}, &tight));       // a chunk missing
  EXPECT_FALSE(check({{9, 9}}, &tight));            // a block missing
  EXPECT_TRUE(check({{9, 9}, {9, 9}}, nullptr));
  EXPECT_FALSE(check({{9, 9}, {9, 8}}, nullptr));   // loose: one count off fails
  EXPECT_NE(golden::iteration_count_group("g", {{7, 9}, {9, 9}}, reference, &tight).worst.find("within [8, 16]"),
            std::string::npos);
}
