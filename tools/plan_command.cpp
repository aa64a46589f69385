// starflow plan: predicted per-GPU memory, step time, img/s and MFU of every TP × DP (× ZeRO-1) layout of a
// model on a GPU cluster (jobs/training_plan.h), calibrated by a measured layer time; with a list of GPU
// counts, the best layout per count. --markdown prints what docs/PLAN_*.md are made of.
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/models/model_presets.h"
#include "jobs/cpu_calibration.h"
#include "jobs/train_config.h"
#include "jobs/training_plan.h"
#include "tools/options.h"

namespace starflow::tools {
namespace {

using jobs::LayoutPrediction;

std::vector<long long> parse_int_list(const std::string& text) {
  std::string s;
  for (char c : text)
    if (c != '[' && c != ']' && c != ' ') s += c == ',' ? ' ' : c;
  std::istringstream in(s);
  std::vector<long long> out;
  for (std::string item; in >> item;) out.push_back(parse_int(item));
  if (out.empty()) throw std::invalid_argument("expected a comma-separated list of integers, got '" + text + "'");
  return out;
}

double positive(const std::string& v) {
  const double x = parse_double(v);
  if (!(x > 0)) throw std::invalid_argument("expected a positive number, got '" + v + "'");
  return x;
}

std::string with_commas(long long n) {
  const std::string digits = std::to_string(n);
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

struct Output {
  bool markdown = false;
  void header(const std::vector<std::string>& cols, const std::vector<int>& widths) const {
    row(cols, widths);
    if (markdown) {
      std::string line = "|";
      for (size_t i = 0; i < cols.size(); ++i) line += i == 0 ? "---|" : "---:|";
      std::printf("%s\n", line.c_str());
    }
  }
  void row(const std::vector<std::string>& cols, const std::vector<int>& widths) const {
    std::string line = markdown ? "|" : "";
    for (size_t i = 0; i < cols.size(); ++i) {
      char cell[96];
      if (markdown) std::snprintf(cell, sizeof cell, " %s |", cols[i].c_str());
      else std::snprintf(cell, sizeof cell, i == 0 ? "%-*s" : " %*s", widths[i], cols[i].c_str());
      line += cell;
    }
    std::printf("%s\n", line.c_str());
  }
};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::vector<std::string> layout_cells(const LayoutPrediction& p) {
  const auto& t = p.time;
  return {p.layout.name(),
          p.layout.zero1 ? "on" : "off",
          std::to_string(p.micro_batch) + "x" + std::to_string(p.accumulation),
          fmt("%.1f", p.memory.total() / 1e9),
          p.fits ? "yes" : "NO",
          fmt("%.3f", t.step()),
          fmt("%.1f", p.images_per_second),
          fmt("%.1f%%", 100 * p.mfu),
          fmt("%.1f%%", 100 * t.communication() / t.step()),
          fmt("%.3f", t.compute),
          fmt("%.3f", t.tensor_parallel),
          fmt("%.3f", t.data_parallel_exposed + t.parameter_gather) + "/" +
              fmt("%.3f", t.data_parallel + t.parameter_gather),
          fmt("%.3f", t.optimizer)};
}

const std::vector<std::string> kLayoutColumns = {"layout", "ZeRO-1", "micro x acc", "GB/GPU", "fits", "step s",
                                                 "img/s", "MFU", "comm", "compute s", "TP s", "DP s exp/all",
                                                 "opt s"};
const std::vector<int> kLayoutWidths = {10, 6, 11, 7, 4, 7, 8, 6, 6, 9, 6, 13, 6};

}  // namespace

int run_plan(int argc, char** argv) {
  std::string preset, config_path;
  std::optional<long long> channels, head_dim, img_size, in_channels, patch_size, txt_size, txt_dim, batch;
  std::optional<std::vector<long long>> layers;
  std::vector<long long> gpu_counts{8}, full_at, tp_only;
  std::string zero = "both";
  jobs::ClusterSpec cluster;
  jobs::TrainingAssumptions assume;
  long long micro_batch = 0;
  std::optional<double> efficiency, layer_ms;
  std::optional<long long> layer_width, layer_tokens, layer_batch;
  bool calibrate_cpu = false;
  int calibrate_repeats = 3;
  Output out;

  auto int_into = [](std::optional<long long>& target, long long min_value) {
    return [&target, min_value](const std::string& v) {
      const long long x = parse_int(v);
      if (x < min_value) throw std::invalid_argument("expected an integer >= " + std::to_string(min_value));
      target = x;
    };
  };
  auto number_into = [](double& target) { return [&target](const std::string& v) { target = positive(v); }; };
  const Option options[] = {
      // Model.
      {"--preset", "NAME", "a built-in model (core/models/model_presets.cpp): 3.86B, 279M, bench-A, bench-B, demo", [&](const std::string& v) { preset = v; }},
      {"--config", "FILE", "a training config (YAML, official keys); its batch_size is the global batch",
       [&](const std::string& v) { config_path = v; }},
      {"--channels", "C", "override: transformer width", int_into(channels, 1)},
      {"--layers-per-block", "LIST", "override: layers of each block, e.g. 2,2,2,2,2,24 (the last is the deep one)",
       [&](const std::string& v) { layers = parse_int_list(v); }},
      {"--head-dim", "N", "override: attention head width", int_into(head_dim, 1)},
      {"--img-size", "N", "override: latent side (tokens = (img-size / patch-size)^2)", int_into(img_size, 1)},
      {"--in-channels", "N", "override: latent channels", int_into(in_channels, 1)},
      {"--patch-size", "N", "override: patch side", int_into(patch_size, 1)},
      {"--txt-size", "N", "override: text-prefix tokens of the deep block (0: unconditional)", int_into(txt_size, 0)},
      {"--txt-dim", "N", "override: text-embedding width", int_into(txt_dim, 0)},
      // The run.
      {"--gpus", "N|LIST", "GPU count, or a list (8,16,...,1024) for the best layout per count (default 8)",
       [&](const std::string& v) { gpu_counts = parse_int_list(v); }},
      {"--batch", "N", "global batch (default: the config's batch_size, or the preset's)",
       int_into(batch, 1)},
      {"--micro-batch", "N", "samples per forward on one replica (default 0: the largest that fits)",
       [&](const std::string& v) { micro_batch = parse_int(v); }},
      {"--tp", "LIST", "only these tensor-parallel widths (default 1,2,4,8)",
       [&](const std::string& v) { tp_only = parse_int_list(v); }},
      {"--zero", "on|off|both", "ZeRO-1 optimizer-state sharding (default both)",
       [&](const std::string& v) {
         if (v != "on" && v != "off" && v != "both") throw std::invalid_argument("expected on, off or both");
         zero = v;
       }},
      // The cluster.
      int_option("--gpus-per-node", cluster.gpus_per_node, 1, "GPUs per node, joined by NVLink (default 8)"),
      {"--nvlink-gbs", "GB/s", "NVLink bandwidth per GPU and direction (default 450)", number_into(cluster.nvlink_gb_per_s)},
      {"--network-gbps", "Gb/s", "network bandwidth per GPU (default 400, InfiniBand NDR)",
       number_into(cluster.network_gbit_per_s)},
      {"--peak-tflops", "TF/s", "GPU peak, dense bf16 (default 989, H200)", number_into(cluster.peak_tflops)},
      {"--gpu-memory-gb", "GB", "GPU memory (default 141, H200)", number_into(cluster.memory_gb)},
      {"--hbm-gbs", "GB/s", "HBM bandwidth for the optimizer step (default 4300, measured H200 copy)",
       number_into(cluster.hbm_gb_per_s)},
      {"--reserved-gb", "GB", "memory held outside the model: context, workspaces, slack (default 4)",
       [&](const std::string& v) {
         cluster.reserved_gb = parse_double(v);
         if (cluster.reserved_gb < 0) throw std::invalid_argument("expected a number >= 0");
       }},
      // Calibration and assumptions.
      {"--efficiency", "F", "fraction of peak the counted FLOPs reach (default 0.418: the official code's MFU)",
       [&](const std::string& v) { efficiency = positive(v); }},
      {"--layer-ms", "MS", "measured forward+backward of one deep layer on the target GPU: sets the efficiency",
       [&](const std::string& v) { layer_ms = positive(v); }},
      {"--layer-width", "C", "width of the measured layer (default: the model's)", int_into(layer_width, 1)},
      {"--layer-tokens", "S", "tokens of the measured layer (default: the deep block's sequence)", int_into(layer_tokens, 1)},
      {"--layer-batch", "B", "batch of the measured layer (default 8)", int_into(layer_batch, 1)},
      {"--calibrate-cpu", nullptr,
       "measure one layer on this machine's CPU ops (default width 512, 256 tokens, batch 4) and use it",
       [&](const std::string&) { calibrate_cpu = true; }},
      int_option("--calibrate-repeats", calibrate_repeats, 1, "timed runs of the CPU calibration (median; default 3)"),
      {"--fused-attention", nullptr, "assume a fused (flash) attention that keeps no probabilities for backward",
       [&](const std::string&) { assume.fused_attention = true; }},
      {"--recompute", nullptr, "layer recompute: a layer keeps only its input; backward runs its forward again",
       [&](const std::string&) { assume.recompute_layers = true; }},
      {"--split-shallow", nullptr, "split the shallow blocks over TP too (the design replicates them)",
       [&](const std::string&) { assume.split_shallow_blocks = true; }},
      {"--grad-bytes", "2|4", "gradient buffer and all-reduce precision (default 4: fp32)",
       [&](const std::string& v) {
         const long long x = parse_int(v);
         if (x != 2 && x != 4) throw std::invalid_argument("expected 2 (bf16) or 4 (fp32)");
         assume.gradient_bytes = static_cast<int>(x);
       }},
      {"--dp-overlap", "F", "fraction of the last backward that hides the gradient reduction (default 0.8)",
       [&](const std::string& v) {
         assume.dp_overlap = parse_double(v);
         if (assume.dp_overlap < 0 || assume.dp_overlap > 1) throw std::invalid_argument("expected a number in [0, 1]");
       }},
      // Output.
      {"--markdown", nullptr, "print Markdown tables", [&](const std::string&) { out.markdown = true; }},
      {"--full-at", "LIST", "with a list of GPU counts: also the full table at these counts",
       [&](const std::string& v) { full_at = parse_int_list(v); }},
  };
  const int parsed = parse_options(
      "plan",
      "Predicts per-GPU memory, step time, img/s and MFU of every TP x DP (x ZeRO-1) layout of a model on a GPU\n"
      "cluster, from FLOP and communication counts and a calibrated efficiency. Example:\n"
      "  starflow plan --preset 3.86B --gpus 8,64,1024 --full-at 64\n"
      "  starflow plan --preset 3.86B --gpus 64 --layer-ms 15.6   (a deep layer at batch 8 in 15.6 ms: 41.8% of peak)",
      options, argc, argv);
  if (parsed >= 0) return parsed;

  try {
    core::FlowConfig cfg;
    int64_t global_batch = 1024;
    std::string model_name;
    if (!preset.empty() && !config_path.empty()) throw std::invalid_argument("give --preset or --config, not both");
    if (!config_path.empty()) {
      const jobs::TrainConfig tc = jobs::TrainConfig::from_file(config_path);
      cfg = tc.model;
      global_batch = tc.batch_size;
      model_name = config_path;
    } else {
      const core::ModelPreset& p = core::model_preset(preset.empty() ? "3.86B" : preset);
      cfg = p.model;
      global_batch = p.batch;
      model_name = p.name;
    }
    if (channels) cfg.channels = *channels;
    if (head_dim) cfg.head_dim = *head_dim;
    if (img_size) cfg.img_size = *img_size;
    if (in_channels) cfg.in_channels = *in_channels;
    if (patch_size) cfg.patch_size = *patch_size;
    if (txt_size) cfg.txt_size = *txt_size;
    if (txt_dim) cfg.txt_dim = *txt_dim;
    if (layers) {
      cfg.layers_per_block.assign(layers->begin(), layers->end());
      cfg.num_blocks = static_cast<int64_t>(layers->size());
    }
    cfg.validate();
    if (batch) global_batch = *batch;
    if (micro_batch < 0) throw std::invalid_argument("--micro-batch must be >= 0");

    // Efficiency: a measured layer (on the target GPU, or on this CPU) beats a stated one beats the default.
    std::string efficiency_source = "default: the official code's measured 41.8% MFU (3.86B, batch 8, one H200)";
    if (calibrate_cpu || layer_ms) {
      const int64_t deep = jobs::deep_block_index(cfg);
      const int64_t w = layer_width.value_or(calibrate_cpu ? 512 : cfg.channels);
      const int64_t s = layer_tokens.value_or(calibrate_cpu ? 256 : jobs::block_sequence_length(cfg, deep));
      const int64_t b = layer_batch.value_or(calibrate_cpu ? 4 : 8);
      double ms = layer_ms.value_or(0);
      std::string where = "on the target GPU";
      if (calibrate_cpu) {
        const auto t = jobs::measure_cpu_layer(w, s, b, cfg.head_dim, calibrate_repeats);
        ms = t.ms;
        std::printf("CPU calibration: one layer (width %lld, %lld tokens, batch %lld) forward+backward %.1f ms = "
                    "%.1f GFLOP/s on %d threads\n\n",
                    (long long)w, (long long)s, (long long)b, t.ms, t.gflops, t.threads);
        where = "on this CPU";
      }
      assume.efficiency = jobs::efficiency_from_layer_time(ms, w, s, b, cluster.peak_tflops);
      efficiency_source = "calibrated: one layer (width " + std::to_string(w) + ", " + std::to_string(s) +
                          " tokens, batch " + std::to_string(b) + ") in " + fmt("%.2f", ms) + " ms " + where;
      if (assume.efficiency > 1)
        throw std::invalid_argument("the measured layer time implies " + fmt("%.0f", 100 * assume.efficiency) +
                                    "% of the peak: check --layer-ms and --peak-tflops");
    } else if (efficiency) {
      assume.efficiency = *efficiency;
      efficiency_source = "given (--efficiency)";
    }

    jobs::PlanRequest request;
    request.global_batch = global_batch;
    request.micro_batch = micro_batch;
    if (!tp_only.empty()) request.tp_choices.assign(tp_only.begin(), tp_only.end());
    request.zero_choices = zero == "both" ? std::vector<bool>{false, true} : std::vector<bool>{zero == "on"};

    // Header: the model, the counts and the assumptions.
    const auto split = jobs::parameter_split(cfg, assume.split_shallow_blocks);
    const char* bullet = out.markdown ? "- " : "  ";
    std::printf("Model %s: %s parameters (%s split over TP), width %lld, layers [", model_name.c_str(), with_commas(split.total()).c_str(), with_commas(split.sharded).c_str(),
                (long long)cfg.channels);
    for (size_t i = 0; i < cfg.layers_per_block.size(); ++i)
      std::printf("%s%lld", i ? "," : "", (long long)cfg.layers_per_block[i]);
    std::printf("], %lld heads, %lld image tokens + %lld text tokens in the deep block; %.1f TFLOP per image "
                "(3 x forward); global batch %lld\n",
                (long long)cfg.num_heads(), (long long)cfg.tokens(), (long long)cfg.txt_size,
                jobs::train_flops_per_step(cfg, 1) / 1e12, (long long)global_batch);
    std::printf("\nAssumptions:\n\n");
    std::printf("%sGPU: %g TFLOP/s peak, %g GB, %d per node; NVLink %g GB/s, network %g Gb/s per GPU; HBM %g GB/s\n",
                bullet, cluster.peak_tflops, cluster.memory_gb, cluster.gpus_per_node, cluster.nvlink_gb_per_s,
                cluster.network_gbit_per_s, cluster.hbm_gb_per_s);
    std::printf("%sefficiency %.1f%% of peak for the counted FLOPs (%s)\n", bullet, 100 * assume.efficiency,
                efficiency_source.c_str());
    std::printf("%smemory: bf16 weights + %s gradients + fp32 master + fp32 AdamW m, v (ZeRO-1 shards master, m and v "
                "over DP); bf16 activations as the layers keep them (%s%s); %.0f GB reserved\n",
                bullet, assume.gradient_bytes == 4 ? "fp32" : "bf16",
                assume.fused_attention ? "fused attention: no probabilities kept" : "attention probabilities kept",
                assume.recompute_layers ? "; layer recompute: one layer's activations per block, inputs kept" : "",
                cluster.reserved_gb);
    std::printf("%slayout: TP fills a node first; it splits %s, DP replicates; micro-batch %s\n", bullet,
                assume.split_shallow_blocks ? "every block (--split-shallow)"
                                            : "the deep block (the shallow blocks run whole on every TP rank)",
                micro_batch > 0 ? std::to_string(micro_batch).c_str()
                                : "= the largest divisor of the local batch that fits (the rest is gradient accumulation)");
    std::printf("%stime: compute + TP all-reduces (4 per split layer per micro-batch, ring over NVLink, not hidden) + the "
                "part of the DP gradient reduction not hidden by %.0f%% of the last backward + ZeRO-1 weight "
                "all-gather (not hidden) + optimizer at HBM speed\n",
                bullet, 100 * assume.dp_overlap);
    std::printf("%sDP bandwidth: NVLink inside a node; across nodes, the NICs of the group's members on a node "
                "(one ring per NIC), at most NVLink's\n",
                bullet);
    std::printf("%scolumns: micro x acc = micro-batch x accumulation steps; comm = share of the step spent in unhidden communication; DP s = "
                "exposed/all, with the ZeRO-1 all-gather\n",
                bullet);

    auto full_table = [&](int gpus) {
      request.gpus = gpus;
      const auto plan = jobs::plan_layouts(cfg, cluster, assume, request);
      const int nodes = (gpus + cluster.gpus_per_node - 1) / cluster.gpus_per_node;
      std::printf("\n%s%d GPU%s (%d node%s), global batch %lld%s\n\n", out.markdown ? "#### " : "", gpus,
                  gpus > 1 ? "s" : "", nodes, nodes > 1 ? "s" : "", (long long)global_batch, out.markdown ? "" : ":");
      out.header(kLayoutColumns, kLayoutWidths);
      for (const auto& p : plan.layouts) out.row(layout_cells(p), kLayoutWidths);
      for (const auto& r : plan.refused) std::printf("%snot possible: %s\n", out.markdown ? "\n" : "", r.c_str());
      return plan;
    };

    if (gpu_counts.size() == 1) {
      const auto plan = full_table(static_cast<int>(gpu_counts[0]));
      if (plan.layouts.empty()) {
        std::fprintf(stderr, "starflow plan: no layout can run this model on %lld GPUs\n", gpu_counts[0]);
        return 2;
      }
      return 0;
    }
    // Several counts: the best fitting layout of each, then the full tables asked for.
    std::printf("\n%s\n\n", out.markdown ? "#### Best layout per GPU count" : "Best layout per GPU count:");
    std::vector<std::string> cols = {"GPUs"};
    cols.insert(cols.end(), kLayoutColumns.begin(), kLayoutColumns.end());
    std::vector<int> widths = {5};
    widths.insert(widths.end(), kLayoutWidths.begin(), kLayoutWidths.end());
    out.header(cols, widths);
    for (long long g : gpu_counts) {
      request.gpus = static_cast<int>(g);
      const auto plan = jobs::plan_layouts(cfg, cluster, assume, request);
      std::vector<std::string> cells = {std::to_string(g)};
      if (plan.layouts.empty() || !plan.layouts.front().fits) {
        cells.push_back(plan.layouts.empty() ? "no valid layout" : "nothing fits");
        cells.resize(cols.size(), "-");
      } else {
        const auto c = layout_cells(plan.layouts.front());
        cells.insert(cells.end(), c.begin(), c.end());
      }
      out.row(cells, widths);
    }
    for (long long g : full_at) full_table(static_cast<int>(g));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow plan: %s\n", e.what());
    return 2;
  }
}

}  // namespace starflow::tools
