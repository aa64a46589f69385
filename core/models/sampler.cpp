// Sampler: token loops, Jacobi fixed-point iteration and guidance over MetaBlock's cached decode path.
#include "core/models/sampler.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

#include "core/ops/cpu/tokens.h"

namespace starflow::core {
namespace {

// STARFlow guidance (spec §5.1) for rows [0, half) (conditional) against [half, 2·half) (null); both halves
// receive the guided σ and μ so the unconditional branch follows the guided history. Elements per half: n.
template <class T>
void apply_guidance(T* sigma, T* mu, int64_t n, double w) {
  const T wt = T(w);
  for (int64_t i = 0; i < n; ++i) {
    const T sc = sigma[i], su = sigma[n + i], mc = mu[i], mu_u = mu[n + i];
    const T r = std::min(sc / su, T(1));
    const T s = r * r;
    const T denom = T(1) + wt - wt * s;
    const T se = sc / std::sqrt(denom), me = ((T(1) + wt) * mc - wt * s * mu_u) / denom;
    sigma[i] = sigma[n + i] = se;
    mu[i] = mu[n + i] = me;
  }
}

// reverse_block for one group of samples, with its state.
template <class T>
void reverse_rows(const StarFlowModel<T>& model, int64_t k, const T* z, T* x, const T* y, const T* y_null, int64_t B,
                  const SampleOptions& opt, std::vector<int64_t>* jacobi_iterations, DecodeState<T>& st) {
  const MetaBlock<T>& block = model.block(k);
  const T* P = model.parameters().data();
  const auto& rope = model.rope_table(block.conditioned());
  const int64_t Tn = block.tokens(), D = block.token_dim();
  const bool guided = block.conditioned() && y_null != nullptr;
  const int64_t rows = guided ? 2 * B : B;

  // v: the permuted noise, duplicated for the null half when guided; y_cat likewise [y; y_null].
  std::vector<T> v(rows * Tn * D);
  cpu::permute_tokens(v.data(), z, B, Tn, D, block.flips());
  if (guided) std::memcpy(v.data() + B * Tn * D, v.data(), sizeof(T) * B * Tn * D);
  std::vector<T> y_cat;
  const T* y_use = y;
  if (guided) {
    const auto& c = model.config();
    const size_t ylen = static_cast<size_t>(B * c.txt_size * c.txt_dim);
    y_cat.resize(2 * ylen);
    std::memcpy(y_cat.data(), y, sizeof(T) * ylen);
    std::memcpy(y_cat.data() + ylen, y_null, sizeof(T) * ylen);
    y_use = y_cat.data();
  }
  block.begin_decode(P, st, y_use, rows, rope);
  st.paired_halves = guided;  // both halves are fed the same X below

  // X [rows, T+1, D]: X[:, 0] = SOS, X[:, t+1] = generated token t (initially the noise: Jacobi's guess).
  std::vector<T> X(rows * (Tn + 1) * D);
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(&X[r * (Tn + 1) * D], block.sos(P), sizeof(T) * D);
    std::memcpy(&X[(r * (Tn + 1) + 1) * D], &v[r * Tn * D], sizeof(T) * Tn * D);
  }
  const int64_t chunk = opt.jacobi ? std::max<int64_t>(1, opt.jacobi_block_size) : 1;
  const int64_t max_iter = opt.jacobi ? std::max<int64_t>(1, opt.jacobi_max_iter) : 1;
  std::vector<T> inp(rows * chunk * D), sigma(rows * chunk * D), mu(rows * chunk * D), xi(rows * chunk * D);
  for (int64_t start = 0; start < Tn; start += chunk) {
    const int64_t n = std::min(chunk, Tn - start);
    int64_t iters = 0;
    for (int64_t it = 0; it < max_iter; ++it) {
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(&inp[r * n * D], &X[(r * (Tn + 1) + start) * D], sizeof(T) * n * D);
      block.decode_chunk(P, st, inp.data(), start, n, sigma.data(), mu.data(), rope);
      if (guided) apply_guidance(sigma.data(), mu.data(), B * n * D, opt.guidance);
      double diff = 0, norm = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n * D; ++i) {
          const int64_t c = r * n * D + i;
          const T val = v[r * Tn * D + start * D + i] * sigma[c] + mu[c];
          T& slot = X[(r * (Tn + 1) + start + 1) * D + i];
          diff += double(val - slot) * double(val - slot);
          norm += double(val) * double(val);
          slot = val;
        }
      iters = it + 1;
      // Sequential decoding is the chunk-of-one case that always stops after one pass.
      if (!opt.jacobi || diff / norm < opt.jacobi_threshold) break;
    }
    if (jacobi_iterations && opt.jacobi) jacobi_iterations->push_back(iters);
  }
  std::vector<T> out(B * Tn * D);
  for (int64_t b = 0; b < B; ++b) std::memcpy(&out[b * Tn * D], &X[(b * (Tn + 1) + 1) * D], sizeof(T) * Tn * D);
  cpu::permute_tokens(x, out.data(), B, Tn, D, block.flips());
}

// Sequential decoding treats every sample on its own, so groups of whole samples can run on separate
// threads without any synchronisation for a whole block, each through the fused step as a team of one:
// no barriers (a token step of the team's row split has ~20, and any stall of one core idles the other at
// the next). A group is one 16-row panel of the small-batch kernel (guidance on 16 images: 8 samples × 2
// rows per thread): fewer rows run the kernel below its FMA throughput, more make each thread's KV caches
// outgrow the caches (64 images: 16-row groups 6.5 ms per image, 32-row groups 7 ms, one team 8 ms). With
// fewer groups than threads the team's row split of every linear is used instead, as it is for Jacobi
// decoding, whose stopping rule spans the batch. Returns the samples per group, 0 for no split.
constexpr int64_t kGroupRows = 16;

template <class T>
int64_t samples_per_group(const MetaBlock<T>& block, const SampleOptions& opt, int64_t B, int64_t rows_per_sample,
                          int64_t threads) {
  const int64_t per_group = std::max<int64_t>(1, kGroupRows / rows_per_sample);
  if (opt.jacobi || threads < 2 || (B + per_group - 1) / per_group < threads) return 0;
  return block.decodes_as_team(per_group * rows_per_sample) ? per_group : 0;
}

}  // namespace

template <class T>
void reverse_block(const StarFlowModel<T>& model, int64_t k, const T* z, T* x, NoDeduce<T> y, NoDeduce<T> y_null, int64_t B,
                   const SampleOptions& opt, std::vector<int64_t>* jacobi_iterations,
                   std::vector<DecodeState<T>>* states) {
  const MetaBlock<T>& block = model.block(k);
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool guided = block.conditioned() && y_null != nullptr;
  const int64_t per_group = samples_per_group(block, opt, B, guided ? 2 : 1, threads);
  const int64_t groups = per_group > 0 ? (B + per_group - 1) / per_group : 1;
  std::vector<DecodeState<T>> own;
  std::vector<DecodeState<T>>& st = states ? *states : own;
  if (st.size() < static_cast<size_t>(std::min(groups, threads))) st.resize(std::min(groups, threads));
  const T* tiled = model.decode_weights(k);  // null: row-major from the parameters
  for (auto& s : st) s.scratch.tiled = tiled;
  if (groups == 1) return reverse_rows(model, k, z, x, y, y_null, B, opt, jacobi_iterations, st[0]);

  const auto& c = model.config();
  const int64_t per_sample = block.tokens() * block.token_dim(), per_text = c.txt_size * c.txt_dim;
  std::exception_ptr error;
#pragma omp parallel num_threads(static_cast<int>(std::min(groups, threads)))
  {
    omp_set_num_threads(1);  // this thread's decode regions: a team of one
    const int64_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
    try {
      for (int64_t g = tid; g < groups; g += nth) {
        const int64_t b0 = g * per_group, b1 = std::min(B, b0 + per_group);
        reverse_rows(model, k, z + b0 * per_sample, x + b0 * per_sample, y ? y + b0 * per_text : nullptr,
                     y_null ? y_null + b0 * per_text : nullptr, b1 - b0, opt, nullptr, st[tid]);
      }
    } catch (...) {
#pragma omp critical(starflow_reverse_block_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

template <class T>
std::vector<T> sample(const StarFlowModel<T>& model, const T* noise, NoDeduce<T> y, NoDeduce<T> y_null, int64_t B,
                      const SampleOptions& opt, SampleTrace<T>* trace) {
  const FlowConfig& c = model.config();
  const int64_t n = B * c.tokens() * c.token_dim();
  std::vector<T> u(n), next(n), image(n);
  cpu::patchify(u.data(), noise, B, c.in_channels, c.img_size, c.img_size, c.patch_size);
  if (trace) {
    trace->sequence.assign(1, std::vector<T>(noise, noise + n));
    trace->jacobi_iterations.clear();
  }
  std::vector<DecodeState<T>> states;
  for (int64_t k = c.num_blocks; k-- > 0;) {
    std::vector<int64_t> iters;
    reverse_block(model, k, u.data(), next.data(), y, y_null, B, opt, &iters, &states);
    std::swap(u, next);
    if (trace) {
      cpu::unpatchify(image.data(), u.data(), B, c.in_channels, c.img_size, c.img_size, c.patch_size);
      trace->sequence.push_back(image);
      trace->jacobi_iterations.push_back(iters);
    }
  }
  cpu::unpatchify(image.data(), u.data(), B, c.in_channels, c.img_size, c.img_size, c.patch_size);
  return image;
}

template <class T>
std::vector<T> denoise(StarFlowModel<T>& model, const T* x, NoDeduce<T> y, int64_t B, double noise_std) {
  const FlowConfig& c = model.config();
  const int64_t n = B * c.in_channels * c.img_size * c.img_size;
  model.forward(x, y, B, 0.0);
  std::vector<T> grad(n);
  model.backward(grad.data(), /*parameter_gradients=*/false);
  // ∂(batch-mean per-dim loss)/∂x · numel = −∇ log p per sample, whatever the batch size.
  std::vector<T> out(n);
  const double step = noise_std * noise_std * double(n);
  for (int64_t i = 0; i < n; ++i) out[i] = T(double(x[i]) - step * double(grad[i]));
  return out;
}

#define STARFLOW_INSTANTIATE(T)                                                                                   \
  template std::vector<T> sample<T>(const StarFlowModel<T>&, const T*, NoDeduce<T>, NoDeduce<T>, int64_t,       \
                                    const SampleOptions&, SampleTrace<T>*);                                      \
  template void reverse_block<T>(const StarFlowModel<T>&, int64_t, const T*, T*, NoDeduce<T>, NoDeduce<T>, int64_t, \
                                 const SampleOptions&, std::vector<int64_t>*, std::vector<DecodeState<T>>*);                  \
  template std::vector<T> denoise<T>(StarFlowModel<T>&, const T*, NoDeduce<T>, int64_t, double);
STARFLOW_INSTANTIATE(float)
STARFLOW_INSTANTIATE(double)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core
