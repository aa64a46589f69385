// Tensor parallelism is exact: the deep block split over 2 (and 4) ranks gives the forward pass, the loss,
// every gradient (gathered back to whole tensors), the weights after an AdamW step, sampling (sequential,
// guided, Jacobi) and denoising of one process, to float32 tolerance — on every golden fixture's config
// and weights and on a 4-head config.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/io/model_weights.h"
#include "core/io/safetensors.h"
#include "core/models/sampler.h"
#include "core/models/starflow_model.h"
#include "core/optim/adamw.h"
#include "core/random.h"
#include "jobs/sample_job.h"
#include "parallel/mpi_communicator.h"
#include "tests/golden/golden_fixtures.h"
#include "tests/mpi/mpi_test_util.h"

using namespace starflow;
using starflow::mpi_test::world_size;

namespace {

// The first n world ranks as a communicator (MPI_COMM_NULL on the others, which sit the test out).
MPI_Comm first_ranks(int n) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank < n ? 0 : MPI_UNDEFINED, rank, &c);
  return c;
}


struct Problem {
  core::FlowConfig cfg;
  std::vector<float> weights;  // whole tensors, in the one-process layout
  std::vector<float> x, y, y_null, noise;
  int64_t batch = 0;
  double lambda = 1e-4;
};

// Everything one run produces, with parameters and gradients gathered to the one-process layout.
struct Outcome {
  std::vector<float> z, dx, grads, stepped, denoised, denoised_learned;
  std::vector<std::vector<float>> logdets, samples;
  core::LossParts loss;
  double denoiser_loss = 0;
};

// Gathers a TP model's buffer (params or grads) into the one-process layout `whole_layout`.
std::vector<float> gather(const core::StarFlowModel<float>& m, const std::vector<float>& local,
                          const core::ParameterLayout& whole_layout) {
  std::vector<float> out(whole_layout.total_size(), 0.f);
  core::Communicator* tp = m.tensor_parallel_group();
  for (const core::ParameterView& v : m.layout().views()) {
    const core::ParameterView& w = whole_layout.at(v.name);
    if (!v.shard.split()) {
      std::copy_n(local.data() + v.offset, v.size, out.data() + w.offset);
      continue;
    }
    std::vector<float> t(core::numel(v.global_shape), 0.f);
    core::place_shard(v, local.data() + v.offset, t.data());
    tp->all_reduce_sum(t.data(), static_cast<int64_t>(t.size()));  // the shards are disjoint: the sum is the union
    std::copy(t.begin(), t.end(), out.data() + w.offset);
  }
  return out;
}

Outcome run(const Problem& p, core::Communicator* tp, bool split_shallow = false, bool recompute = false) {
  core::StarFlowModel<float> whole_layout_model(p.cfg);  // names → one-process offsets
  const core::ParameterLayout& whole = whole_layout_model.layout();
  core::StarFlowModel<float> m(p.cfg, tp, split_shallow);
  m.set_recompute(recompute);  // under TP the recomputed forward repeats its all-reduces on every rank alike
  for (const core::ParameterView& v : m.layout().views())
    core::extract_shard(v, p.weights.data() + whole.at(v.name).offset, m.parameters().data() + v.offset);
  const float* y = p.cfg.conditional() ? p.y.data() : nullptr;
  const int64_t B = p.batch;

  Outcome o;
  m.zero_gradients();
  o.loss = m.forward(p.x.data(), y, B, p.lambda);
  o.z = m.z();
  for (int64_t k = 0; k < p.cfg.num_blocks; ++k) o.logdets.push_back(m.logdet(k));
  o.dx.resize(p.x.size());
  m.backward(o.dx.data());
  if (m.has_denoiser()) {  // its loss against the flow's input gradient, and its gradients (gathered below)
    o.denoiser_loss = m.denoiser_forward(p.x.data(), y, o.dx.data(), B);
    m.denoiser_backward();
  }
  o.grads = gather(m, m.gradients(), whole);

  core::AdamW<float> opt(static_cast<int64_t>(m.parameters().size()), core::AdamWConfig{0.9, 0.95, 1e-8, 1e-4});
  std::vector<float> params = m.parameters();
  opt.step(params, m.gradients(), 1e-3);
  o.stepped = gather(m, params, whole);

  const float* y_null = p.cfg.conditional() ? p.y_null.data() : nullptr;
  core::SampleOptions plain, guided, jacobi;
  guided.guidance = 2.0;
  jacobi.jacobi = true;
  jacobi.jacobi_block_size = 8;
  jacobi.jacobi_threshold = 1e-9;
  jacobi.jacobi_max_iter = 64;
  o.samples.push_back(core::sample(m, p.noise.data(), y, nullptr, B, plain));
  if (y_null) o.samples.push_back(core::sample(m, p.noise.data(), y, y_null, B, guided));
  o.samples.push_back(core::sample(m, p.noise.data(), y, y_null, B, jacobi));
  o.denoised = core::denoise(m, o.samples.front().data(), y, B, 0.3);
  if (m.has_denoiser()) o.denoised_learned = core::denoise_learned(m, o.samples.front().data(), y, B, 0.3);
  return o;
}

// max |a − b| / max |b|.
double relative(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  return diff / scale;
}

void expect_same(const Outcome& tp, const Outcome& one, const std::string& what) {
  EXPECT_LT(relative(tp.z, one.z), 2e-6) << what << ": forward.z";
  for (size_t k = 0; k < one.logdets.size(); ++k) EXPECT_LT(relative(tp.logdets[k], one.logdets[k]), 2e-6) << what << ": logdet " << k;
  EXPECT_NEAR(tp.loss.total, one.loss.total, 1e-6 * std::abs(one.loss.total) + 1e-7) << what << ": loss";
  EXPECT_NEAR(tp.loss.latent_norm, one.loss.latent_norm, 1e-6 * std::abs(one.loss.latent_norm)) << what;
  EXPECT_LT(relative(tp.grads, one.grads), 1e-5) << what << ": gradients";
  EXPECT_LT(relative(tp.dx, one.dx), 1e-5) << what << ": input gradient";
  // AdamW's first step is lr·sign(g) wherever |g| ≫ eps, and float-level gradient differences flip it
  // where |g| ~ eps: the golden README's bound for a step from our own gradients, 1e-4 absolute at lr 1e-3.
  double worst = 0;
  for (size_t i = 0; i < one.stepped.size(); ++i) worst = std::max(worst, double(std::abs(tp.stepped[i] - one.stepped[i])));
  EXPECT_LT(worst, 1e-4) << what << ": weights after AdamW";
  for (size_t i = 0; i < one.samples.size(); ++i)
    EXPECT_LT(relative(tp.samples[i], one.samples[i]), 2e-5) << what << ": sample variant " << i;
  EXPECT_LT(relative(tp.denoised, one.denoised), 2e-5) << what << ": denoise";
  EXPECT_NEAR(tp.denoiser_loss, one.denoiser_loss, 1e-6 * std::abs(one.denoiser_loss)) << what << ": denoiser loss";
  EXPECT_LT(relative(tp.denoised_learned, one.denoised_learned), 2e-5) << what << ": learned denoising";
}

Problem from_fixture(const std::string& name) {
  const auto file = core::io::SafeTensorsFile::open(starflow::testing::golden_fixture(name));
  Problem p;
  p.cfg = core::io::read_config(file);
  core::StarFlowModel<float> m(p.cfg);
  core::io::load_weights(m, file);
  p.weights = m.parameters();
  p.x = file.read<float>("input.x").data;
  p.batch = file.info("input.x").shape[0];
  p.noise = file.read<float>("input.sample_noise").data;
  if (p.cfg.conditional()) {
    p.y = file.read<float>("input.y").data;
    p.y_null = file.read<float>("input.y_null").data;
  }
  return p;
}

// Four heads of 32 channels, class-conditional, text prefix in the deep block, random weights and inputs.
Problem four_heads() {
  Problem p;
  p.cfg.in_channels = 2;
  p.cfg.img_size = 4;
  p.cfg.channels = 128;
  p.cfg.head_dim = 32;
  p.cfg.num_blocks = 2;
  p.cfg.layers_per_block = {1, 2};
  p.cfg.txt_size = 3;
  p.cfg.txt_dim = 8;
  core::StarFlowModel<float> m(p.cfg);
  m.init_parameters(11);
  core::Rng rng(12);
  // proj_out starts at zero; give every tensor some size so the test sees every path.
  for (float& w : m.parameters()) w += float(0.02 * rng.normal());
  p.weights = m.parameters();
  p.batch = 3;
  const int64_t n = p.batch * p.cfg.in_channels * p.cfg.img_size * p.cfg.img_size;
  for (int64_t i = 0; i < n; ++i) p.x.push_back(float(rng.normal())), p.noise.push_back(float(rng.normal()));
  for (int64_t i = 0; i < p.batch * p.cfg.txt_size * p.cfg.txt_dim; ++i)
    p.y.push_back(float(rng.normal())), p.y_null.push_back(0.f);
  return p;
}

void check_tp_equals_one(const Problem& p, int tp_size, const std::string& what, bool split_shallow = false,
                         bool recompute = false) {
  MPI_Comm c = first_ranks(tp_size);
  if (c == MPI_COMM_NULL) return;
  {
    parallel::MpiCommunicator tp(c);
    const Outcome one = run(p, nullptr);
    const Outcome split = run(p, &tp, split_shallow, recompute);
    expect_same(split, one, what + " TP=" + std::to_string(tp_size) + (split_shallow ? " (all blocks)" : "") +
                                (recompute ? " (layer recompute)" : ""));
  }
  MPI_Comm_free(&c);
}

}  // namespace

TEST(TensorParallel, GoldenFixturesTP2EqualsTP1) {
  if (world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  for (const char* f : {"tiny_uncond.safetensors", "tiny_class.safetensors", "tiny_text.safetensors",
                        "tiny_patch2.safetensors"})
    check_tp_equals_one(from_fixture(f), 2, f);
  check_tp_equals_one(from_fixture("tiny_text.safetensors"), 2, "tiny_text", /*split_shallow=*/true);
  check_tp_equals_one(from_fixture("tiny_class.safetensors"), 2, "tiny_class", /*split_shallow=*/true,
                      /*recompute=*/true);
  // The official switches: grouped-query attention (4 query heads, 2 KV heads, attention width 128 on C = 64:
  // each rank holds unequal q and k/v row blocks of QKV), QK-norm (its gains' gradients summed over the group),
  // SwiGLU, RMSNorm, no biases; then text in every block without pre-norms.
  check_tp_equals_one(from_fixture("tiny_options_a.safetensors"), 2, "tiny_options_a");
  check_tp_equals_one(from_fixture("tiny_options_a.safetensors"), 2, "tiny_options_a", /*split_shallow=*/true,
                      /*recompute=*/true);
  check_tp_equals_one(from_fixture("tiny_options_condall.safetensors"), 2, "tiny_options_condall",
                      /*split_shallow=*/true);
  // Post-norms, hf-style RoPE, the wider deep block split over its 2 heads, the conditional learnable
  // self-denoiser replicated.
  check_tp_equals_one(from_fixture("tiny_options_b.safetensors"), 2, "tiny_options_b");
}

TEST(TensorParallel, FourHeadsTP2AndTP4EqualTP1) {
  if (world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const Problem p = four_heads();
  check_tp_equals_one(p, 2, "4 heads");
  check_tp_equals_one(p, 2, "4 heads", /*split_shallow=*/true);
  if (world_size() >= 4) check_tp_equals_one(p, 4, "4 heads");
  if (world_size() >= 4) check_tp_equals_one(p, 4, "4 heads", /*split_shallow=*/true);
}

TEST(TensorParallel, ShardsHoldTheirHeadsOnly) {
  // The layout itself: rank r of 2 holds half of QKV's q, k and v rows and half of fc2's columns.
  core::FlowConfig cfg = four_heads().cfg;
  if (world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  MPI_Comm c = first_ranks(2);
  if (c == MPI_COMM_NULL) return;
  {
    parallel::MpiCommunicator tp(c);
    core::StarFlowModel<float> m(cfg, &tp);
    const core::ParameterView& qkv = m.layout().at("blocks.1.attn_blocks.0.attention.qkv.weight");
    EXPECT_EQ(qkv.shape, (core::Shape{3 * 64, 128}));
    EXPECT_EQ(qkv.global_shape, (core::Shape{3 * 128, 128}));
    std::vector<int64_t> rows;
    core::for_each_global_run(qkv, 0, qkv.size, [&](int64_t, int64_t g, int64_t n) { rows.push_back(g / 128); });
    // Three runs: q, k and v rows of this rank's two heads.
    ASSERT_EQ(rows.size(), 3u);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(rows[j], j * 128 + tp.rank() * 64);
    EXPECT_EQ(m.layout().at("blocks.1.attn_blocks.1.mlp.main.2.weight").shape, (core::Shape{128, 256}));
    EXPECT_EQ(m.layout().at("blocks.0.attn_blocks.0.mlp.main.2.weight").shape, (core::Shape{128, 512}))
        << "shallow blocks stay whole";
    EXPECT_EQ(m.layout().global_parameter_count(), core::StarFlowModel<float>(cfg).layout().parameter_count());
  }
  MPI_Comm_free(&c);
}

TEST(TensorParallel, WidthNotDividingTheHeadsIsRefused) {
  if (world_size() < 3) GTEST_SKIP() << "needs 3 ranks";
  MPI_Comm c = first_ranks(3);
  if (c == MPI_COMM_NULL) return;
  {
    parallel::MpiCommunicator tp(c);
    core::FlowConfig cfg = four_heads().cfg;  // 4 heads over 3 ranks
    try {
      core::StarFlowModel<float> m(cfg, &tp);
      ADD_FAILURE() << "accepted TP=3 with 4 heads";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("does not divide the deep block's 4 attention heads"), std::string::npos)
          << e.what();
    }
  }
  MPI_Comm_free(&c);
}

TEST(TensorParallel, SampleJobTP2EqualsOneProcess) {
  // The sampling job (what `starflow sample --tp 2` runs): same weights, seed and condition, the deep block
  // split over 2 ranks, gives one process's latents; guided, denoised.
  if (world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  MPI_Comm c = first_ranks(2);
  if (c == MPI_COMM_NULL) return;
  {
    parallel::MpiCommunicator tp(c);
    jobs::SampleJobOptions o;
    o.weights = starflow::testing::golden_fixture("tiny_class.safetensors");
    o.classes = {3, 7};
    o.cfg = 1.5;
    o.batch = 4;
    o.seed = 5;
    o.denoise = true;
    const jobs::SampleJobResult one = jobs::run_sample_job(o);
    o.tp = &tp;
    const jobs::SampleJobResult split = jobs::run_sample_job(o);
    EXPECT_LT(relative(split.latents, one.latents), 2e-5);
  }
  MPI_Comm_free(&c);
}
