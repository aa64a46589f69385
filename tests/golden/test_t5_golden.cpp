// T5 parity: the tokenizer and encoder fixtures of tests/golden/data (upstream transformers v4.33.3 in float64)
// through golden::check_file, as `starflow check-golden` runs them, within README_TEXT_AND_VAE §7's thresholds.
#include <gtest/gtest.h>

#include <iostream>
#include <set>
#include <string>

#include "core/golden/golden_check.h"
#include "tests/golden/golden_fixtures.h"

using namespace starflow::core;

namespace {

void expect_groups(const golden::Report& report, const std::vector<std::string>& required,
                   const std::set<std::string>& informational) {
  std::set<std::string> ran;
  for (const auto& g : report.groups) {
    if (!g.ran) {
      EXPECT_TRUE(informational.count(g.group)) << "group " << g.group << " was not computed: " << g.note;
      continue;
    }
    ran.insert(g.group);
    EXPECT_TRUE(g.pass()) << g.group << ": max rel " << g.max_rel << " abs " << g.max_abs << " > " << g.tolerance
                          << " (" << g.metric << "), worst " << g.worst;
  }
  for (const std::string& g : required) EXPECT_TRUE(ran.count(g)) << "group " << g << " did not run";
  std::cout << golden::format_report(report);
}

}  // namespace

TEST(T5Golden, TokenizerRowsExact) {
  const golden::Report report = golden::check_file(starflow::testing::golden_fixture("t5_tokenizer.safetensors"));
  expect_groups(report, {"tok.L32", "tok.L128"}, {"tok_special.L32 (informational)"});
  EXPECT_TRUE(report.pass());
}

TEST(T5Golden, EncoderEveryGroupWithinTolerance) {
  const golden::Report report = golden::check_file(starflow::testing::golden_fixture("t5_tiny_encoder.safetensors"));
  expect_groups(report,
                {"input tokens", "aux.rel_bucket", "aux.embed", "aux.position_bias", "out.last_hidden_state",
                 "out.masked_hidden_state", "aux.block.*", "aux.attn_probs.*", "aux.block0.*",
                 "encode (padding skipped)"},
                {});
  for (const auto& g : report.groups) {
    if (g.group == "aux.block.*" || g.group == "aux.attn_probs.*") {
      EXPECT_EQ(g.tensors, 3) << g.group;
    }
    if (g.group == "aux.block0.*") {
      EXPECT_EQ(g.tensors, 5);
    }
  }
  EXPECT_TRUE(report.pass());
}
