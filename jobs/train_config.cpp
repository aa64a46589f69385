// YAML parsing of TrainConfig. Each key is handled by one table entry; the official keys that do not apply
// to this implementation (FSDP switches, the webdataset loader, ...) are accepted and ignored, by name.
#include "jobs/train_config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include "core/io/files.h"

namespace starflow::jobs {
namespace {

[[noreturn]] void key_error(const std::string& origin, const std::string& key, const std::string& what) {
  throw std::runtime_error(origin + ": key '" + core::io::printable(key) + "': " + core::io::printable(what));
}

template <class T>
T scalar(const YAML::Node& n, const std::string& origin, const std::string& key, const char* expected) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    key_error(origin, key, std::string("expected ") + expected);
  }
}

}  // namespace

TrainConfig TrainConfig::from_yaml(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(origin + ": not valid YAML (line " + std::to_string(e.mark.line + 1) + "): " +
                             core::io::printable(e.msg));
  }
  TrainConfig c;
  c.source_text = text;
  if (root.IsNull()) return c;
  if (!root.IsMap()) throw std::runtime_error(origin + ": expected a mapping of keys to values");
  auto& m = c.model;
  using Setter = std::function<void(const YAML::Node&, const std::string&)>;
  auto i64 = [&](int64_t& dst) -> Setter {
    return [&, ptr = &dst](const YAML::Node& n, const std::string& k) { *ptr = scalar<int64_t>(n, origin, k, "an integer"); };
  };
  auto u64 = [&](uint64_t& dst) -> Setter {
    return [&, ptr = &dst](const YAML::Node& n, const std::string& k) { *ptr = scalar<uint64_t>(n, origin, k, "a non-negative integer"); };
  };
  auto f64 = [&](double& dst) -> Setter {
    return [&, ptr = &dst](const YAML::Node& n, const std::string& k) { *ptr = scalar<double>(n, origin, k, "a number"); };
  };
  auto flag = [&](bool& dst) -> Setter {
    return [&, ptr = &dst](const YAML::Node& n, const std::string& k) {
      const std::string v = scalar<std::string>(n, origin, k, "a boolean");
      if (v == "1" || v == "true" || v == "True") *ptr = true;
      else if (v == "0" || v == "false" || v == "False") *ptr = false;
      else key_error(origin, k, "expected a boolean (0/1/true/false)");
    };
  };
  auto str = [&](std::string& dst) -> Setter {
    return [&, ptr = &dst](const YAML::Node& n, const std::string& k) { *ptr = scalar<std::string>(n, origin, k, "a string"); };
  };
  std::string official_vae, official_text;
  auto local_path = [&](std::string& dst) -> Setter {
    return [&, ptr = &dst](const YAML::Node& n, const std::string& k) {
      const std::string value = scalar<std::string>(n, origin, k, "a string");
      std::error_code ec;
      if (std::filesystem::exists(value, ec)) *ptr = value;
    };
  };
  auto must_be = [&](const std::string& required) -> Setter {
    return [&, required](const YAML::Node& n, const std::string& k) {
      if (scalar<std::string>(n, origin, k, "a value") != required)
        key_error(origin, k, "only " + required + " is supported");
    };
  };
  const std::map<std::string, Setter> keys = {
      // Model (official names; `channel_size` and `blocks` are the YAML spellings of in_channels/num_blocks).
      {"channel_size", i64(m.in_channels)}, {"in_channels", i64(m.in_channels)}, {"img_size", i64(m.img_size)},
      {"patch_size", i64(m.patch_size)}, {"channels", i64(m.channels)}, {"blocks", i64(m.num_blocks)},
      {"num_blocks", i64(m.num_blocks)}, {"head_dim", i64(m.head_dim)}, {"txt_size", i64(m.txt_size)},
      {"txt_dim", i64(m.txt_dim)}, {"cond_top_only", flag(m.cond_top_only)}, {"soft_clip", f64(m.soft_clip)},
      {"use_softplus", flag(m.use_softplus)}, {"use_final_norm", flag(m.use_final_norm)},
      {"pt_seq_len", i64(m.pt_seq_len)}, {"sos", flag(m.sos)}, {"rope", must_be("1")},
      // The official model's optional switches (core/models/flow_config.h).
      {"use_swiglu", flag(m.use_swiglu)}, {"use_qk_norm", flag(m.use_qk_norm)},
      {"use_post_norm", flag(m.use_post_norm)}, {"use_bias", flag(m.use_bias)},
      {"hf_style_rope", flag(m.hf_style_rope)}, {"num_heads", i64(m.attention_heads)},
      {"num_kv_heads", i64(m.kv_heads)}, {"top_block_channels", i64(m.top_block_channels)},
      {"norm_type",
       [&](const YAML::Node& n, const std::string& k) {
         // As the official code: any name but these two means no pre-norm at all.
         const std::string v = scalar<std::string>(n, origin, k, "a norm name");
         m.norm_type = v == "layer_norm" ? core::NormType::kLayerNorm
                       : v == "rms_norm" ? core::NormType::kRmsNorm
                                         : core::NormType::kNone;
       }},
      {"learnable_self_denoiser", flag(m.learnable_self_denoiser)},
      {"conditional_denoiser", flag(m.conditional_denoiser)},
      {"layers_per_block",
       [&](const YAML::Node& n, const std::string& k) {
         if (!n.IsSequence()) key_error(origin, k, "expected a list of integers, e.g. [2, 2, 6]");
         m.layers_per_block.clear();
         for (const auto& v : n) m.layers_per_block.push_back(scalar<int64_t>(v, origin, k, "a list of integers"));
       }},
      {"seq_order",
       [&](const YAML::Node& n, const std::string& k) {
         const std::string v = scalar<std::string>(n, origin, k, "L2R or R2L");
         if (v != "L2R" && v != "R2L") key_error(origin, k, "expected L2R or R2L, got '" + v + "'");
         m.seq_order = v == "L2R" ? core::SeqOrder::L2R : core::SeqOrder::R2L;
       }},
      // Recipe.
      {"noise_std", f64(c.noise_std)}, {"lr", f64(c.lr)}, {"min_lr", f64(c.min_lr)},
      {"warmup_steps", i64(c.warmup_steps)}, {"steps", i64(c.steps)}, {"batch_size", i64(c.batch_size)},
      {"drop_label", f64(c.drop_label)}, {"latent_norm_regularization", f64(c.latent_norm_regularization)},
      {"weight_decay", f64(c.weight_decay)}, {"beta1", f64(c.beta1)}, {"beta2", f64(c.beta2)},
      {"adam_eps", f64(c.adam_eps)}, {"denoiser_lr", f64(c.denoiser_lr)}, {"grad_clip", f64(c.grad_clip)}, {"ema", f64(c.ema)},
      {"max_bad_steps", i64(c.max_bad_steps)}, {"cfg", f64(c.cfg)},
      // Ours.
      {"data", str(c.data)}, {"seed", u64(c.seed)}, {"output_dir", str(c.output_dir)},
      {"checkpoint_dir", str(c.checkpoint_dir)}, {"init_weights", str(c.init_weights)}, {"checkpoint_every", i64(c.checkpoint_every)},
      {"keep_checkpoints", i64(c.keep_checkpoints)}, {"checkpoint_async", flag(c.checkpoint_async)},
      {"eval_every", i64(c.eval_every)}, {"eval_data", str(c.eval_data)}, {"eval_fraction", f64(c.eval_fraction)},
      {"eval_batches", i64(c.eval_batches)}, {"keep_best", flag(c.keep_best)},
      {"sample_every", i64(c.sample_every)},
      {"log_every", i64(c.log_every)}, {"tp", i64(c.tp)}, {"tp_shallow", flag(c.tp_shallow)}, {"dp", i64(c.dp)}, {"zero1", flag(c.zero1)},
      {"recompute_layers", flag(c.recompute_layers)},
      {"bucket_mb", i64(c.bucket_mb)}, {"threads", i64(c.threads)}, {"device", str(c.device)},
      {"precision", str(c.precision)},
      {"watchdog_seconds", f64(c.watchdog_seconds)}, {"straggler_ratio", f64(c.straggler_ratio)},
      {"preflight_slow", f64(c.preflight_slow)}, {"preflight_expect_gflops", f64(c.preflight_expect_gflops)},
      {"autoencoder", str(c.autoencoder)}, {"text_encoder", str(c.text_encoder)},
      // The official recipe names its frozen encoders here (hub names such as stabilityai/sd-vae-ft-ema, which
      // nothing here can download: the shards already hold their outputs); a local path is used for previews.
      {"vae", local_path(official_vae)}, {"text", local_path(official_text)},
      {"preview_captions",
       [&](const YAML::Node& n, const std::string& k) {
         if (!n.IsSequence()) key_error(origin, k, "expected a list of captions, e.g. [red heart, cat]");
         c.preview_captions.clear();
         for (const auto& v : n) c.preview_captions.push_back(scalar<std::string>(v, origin, k, "a list of captions"));
       }},
  };
  // Official keys with no effect here: sharding/loader switches of the PyTorch code, and names of the
  // frozen encoders (ours are chosen by the data the shards hold).
  static const std::set<std::string> ignored = {"fsdp", "fsdp_text_encoder", "nvp", "adaln", "wds", "no_flip",
                                                "gradient_checkpoint", "sample_freq", "use_pretrained_lm",
                                                "mix_aspect", "acc", "loss_scaling"};
  std::set<std::string> seen;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar() && !kv.first.IsNull())  // `? [a]: 1`, `{a: 1}: 2`: as<> would throw yaml-cpp's error
      throw std::runtime_error(origin + ": a key is not a name (line " + std::to_string(kv.first.Mark().line + 1) + ")");
    const std::string key = kv.first.as<std::string>();
    // yaml-cpp keeps both of a repeated key; taking the last silently would hide an edit that did not apply.
    if (!seen.insert(key).second)
      key_error(origin, key, "given twice (line " + std::to_string(kv.first.Mark().line + 1) + ")");
    if (auto it = keys.find(key); it != keys.end()) it->second(kv.second, key);
    else if (!ignored.count(key)) key_error(origin, key, "unknown key");
  }
  if (c.autoencoder.empty()) c.autoencoder = official_vae;
  if (c.text_encoder.empty()) c.text_encoder = official_text;
  c.validate(origin);
  return c;
}

TrainConfig TrainConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_yaml(ss.str(), path);
}

std::string TrainConfig::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  auto put = [&](const char* key, const auto& value) {
    out << YAML::Key << key << YAML::Value;
    if constexpr (std::is_floating_point_v<std::decay_t<decltype(value)>>) {
      char text[32];  // the shortest text that reads back as the same double: 0.2, not 0.20000000000000001
      const auto end = std::to_chars(text, text + sizeof text, value).ptr;
      out << std::string(text, end);
    } else {
      out << value;
    }
  };
  auto put_list = [&](const char* key, const auto& values) {
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& v : values) out << v;
    out << YAML::EndSeq;
  };
  auto put_flag = [&](const char* key, bool value) { put(key, value ? 1 : 0); };
  const core::FlowConfig& m = model;
  put("channel_size", m.in_channels);
  put("img_size", m.img_size);
  put("patch_size", m.patch_size);
  put("channels", m.channels);
  put("blocks", m.num_blocks);
  put_list("layers_per_block", m.layers_per_block);
  put("head_dim", m.head_dim);
  put("txt_size", m.txt_size);
  put("txt_dim", m.txt_dim);
  put_flag("cond_top_only", m.cond_top_only);
  put("soft_clip", m.soft_clip);
  put("seq_order", m.seq_order == core::SeqOrder::L2R ? "L2R" : "R2L");
  put_flag("use_softplus", m.use_softplus);
  put_flag("use_final_norm", m.use_final_norm);
  put("pt_seq_len", m.pt_seq_len);
  put_flag("sos", m.sos);
  if (m.norm_type != core::NormType::kLayerNorm) put("norm_type", m.norm_type == core::NormType::kRmsNorm ? "rms_norm" : "none");
  put_flag("use_swiglu", m.use_swiglu);
  put_flag("use_qk_norm", m.use_qk_norm);
  put_flag("use_post_norm", m.use_post_norm);
  put_flag("use_bias", m.use_bias);
  put_flag("hf_style_rope", m.hf_style_rope);
  if (m.attention_heads > 0) put("num_heads", m.attention_heads);
  if (m.kv_heads > 0) put("num_kv_heads", m.kv_heads);
  if (m.top_block_channels > 0) put("top_block_channels", m.top_block_channels);
  put_flag("learnable_self_denoiser", m.learnable_self_denoiser);
  put_flag("conditional_denoiser", m.conditional_denoiser);
  put("noise_std", noise_std);
  put("lr", lr);
  put("min_lr", min_lr);
  put("warmup_steps", warmup_steps);
  put("steps", steps);
  put("batch_size", batch_size);
  put("drop_label", drop_label);
  put("latent_norm_regularization", latent_norm_regularization);
  put("weight_decay", weight_decay);
  put("beta1", beta1);
  put("beta2", beta2);
  put("adam_eps", adam_eps);
  put("denoiser_lr", denoiser_lr);
  put("grad_clip", grad_clip);
  put("ema", ema);
  put("max_bad_steps", max_bad_steps);
  put("cfg", cfg);
  put("data", data);
  put("seed", seed);
  put("output_dir", output_dir);
  put("checkpoint_dir", checkpoint_dir);
  put("init_weights", init_weights);
  put("checkpoint_every", checkpoint_every);
  put("keep_checkpoints", keep_checkpoints);
  put_flag("checkpoint_async", checkpoint_async);
  put("eval_every", eval_every);
  if (!eval_data.empty()) put("eval_data", eval_data);
  put("eval_fraction", eval_fraction);
  put("eval_batches", eval_batches);
  put_flag("keep_best", keep_best);
  put("sample_every", sample_every);
  put("autoencoder", autoencoder);
  put("text_encoder", text_encoder);
  if (!preview_captions.empty()) put_list("preview_captions", preview_captions);
  put("log_every", log_every);
  put("tp", tp);
  put_flag("tp_shallow", tp_shallow);
  put("dp", dp);
  put_flag("zero1", zero1);
  put_flag("recompute_layers", recompute_layers);
  put("bucket_mb", bucket_mb);
  put("threads", threads);
  put("device", device);
  if (!precision.empty()) put("precision", precision);
  put("watchdog_seconds", watchdog_seconds);
  put("straggler_ratio", straggler_ratio);
  put("preflight_slow", preflight_slow);
  put("preflight_expect_gflops", preflight_expect_gflops);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void TrainConfig::validate(const std::string& origin) const {
  try {
    model.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(origin + ": " + e.what());
  }
  auto need = [&](bool ok, const char* key, const std::string& rule) {
    if (!ok) key_error(origin, key, rule);
  };
  need(noise_std >= 0, "noise_std", "must be >= 0");
  need(lr > 0, "lr", "must be > 0");
  need(min_lr >= 0 && min_lr <= lr, "min_lr", "must be in [0, lr]");
  need(warmup_steps >= 0, "warmup_steps", "must be >= 0");
  need(steps >= 1, "steps", "must be >= 1");
  need(batch_size >= 1, "batch_size", "must be >= 1");
  need(drop_label >= 0 && drop_label <= 1, "drop_label", "must be in [0, 1]");
  need(latent_norm_regularization >= 0, "latent_norm_regularization", "must be >= 0");
  need(weight_decay >= 0, "weight_decay", "must be >= 0");
  need(beta1 >= 0 && beta1 < 1, "beta1", "must be in [0, 1)");
  need(beta2 >= 0 && beta2 < 1, "beta2", "must be in [0, 1)");
  need(adam_eps > 0, "adam_eps", "must be > 0");
  need(denoiser_lr > 0, "denoiser_lr", "must be > 0");
  need(grad_clip >= 0, "grad_clip", "must be >= 0");
  need(ema >= 0 && ema < 1, "ema", "must be in [0, 1)");
  need(max_bad_steps >= 1, "max_bad_steps", "must be >= 1");
  need(cfg >= 0, "cfg", "must be >= 0");
  need(checkpoint_every >= 0, "checkpoint_every", "must be >= 0");
  need(keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1");
  need(sample_every >= 0, "sample_every", "must be >= 0");
  need(eval_every >= 0, "eval_every", "must be >= 0 (0: no held-out evaluation)");
  need(eval_fraction >= 0 && eval_fraction <= 0.5, "eval_fraction", "must be in [0, 0.5]");
  need(eval_fraction == 0 || eval_data.empty(), "eval_fraction", "give eval_data or eval_fraction, not both");
  need(eval_fraction == 0 || data != "synthetic", "eval_fraction",
       "is for shard data (synthetic data is evaluated on a held-out part of its stream)");
  need(eval_every == 0 || data == "synthetic" || !eval_data.empty() || eval_fraction > 0, "eval_every",
       "needs eval_data (a held-out shard directory) or eval_fraction (a part of the training shards)");
  need(eval_batches >= 1, "eval_batches", "must be >= 1");
  need(!keep_best || eval_every > 0, "keep_best", "needs eval_every > 0 (the best is by held-out bits/dim)");
  need(sample_every == 0 || !autoencoder.empty(), "autoencoder",
       "required when sample_every > 0 (the preview grids decode the samples through it)");
  need(preview_captions.empty() || model.txt_size > 1, "preview_captions",
       "only for text-conditioned models (txt_size > 1)");
  need(log_every >= 1, "log_every", "must be >= 1");
  need(tp >= 1, "tp", "must be >= 1");
  need(model.num_heads() % tp == 0, "tp",
       std::to_string(tp) + " does not divide the deep block's " + std::to_string(model.num_heads()) +
           " attention heads (num_heads, or channels / head_dim)");
  need(model.block_kv_heads(model.num_blocks - 1) % tp == 0, "tp",
       std::to_string(tp) + " does not divide the deep block's " +
           std::to_string(model.block_kv_heads(model.num_blocks - 1)) + " key/value heads (num_kv_heads)");
  need(dp >= 0, "dp", "must be >= 0 (0: all ranks not used by tp)");
  need(bucket_mb >= 1, "bucket_mb", "must be >= 1");
  need(watchdog_seconds >= 0, "watchdog_seconds", "must be >= 0 (0: no watchdog)");
  need(straggler_ratio == 0 || straggler_ratio > 1, "straggler_ratio", "must be > 1, or 0 (no report)");
  need(preflight_slow >= 0 && preflight_slow < 1, "preflight_slow", "must be in [0, 1)");
  need(preflight_expect_gflops >= 0, "preflight_expect_gflops", "must be >= 0");
  need(threads >= 0, "threads", "must be >= 0");
  need(!data.empty(), "data", "must name 'synthetic' or a shard directory");
  need(device == "cpu" || device == "cuda", "device", "expected cpu or cuda, got '" + device + "'");
  need(precision.empty() || precision == "fp32" || precision == "bf16", "precision",
       "expected fp32 or bf16, got '" + precision + "'");
  need(device == "cuda" || effective_precision() == "fp32", "precision",
       "bf16 is for device: cuda (the CPU trains in fp32)");
}

}  // namespace starflow::jobs
