// The T5 fixtures' check. The encoder is run twice: forward_masked (upstream's full-length computation with the
// additive key mask) gives every out.* and aux.* group, including the probabilities of padded queries and the
// exact zeros of padded keys; encode() (padding skipped, each row at its own length) is compared with
// out.masked_hidden_state as its own group, so the path the pipeline uses is held to the same tolerance.
#include "core/golden/t5_check.h"

#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/golden/golden_internal.h"
#include "core/io/sharded_safetensors.h"
#include "core/models/t5_encoder.h"
#include "core/models/t5_position_bias.h"
#include "core/models/t5_tokenizer.h"

namespace starflow::core::golden {

namespace {

// The SentencePiece model the fixture was tokenized with: the file named at the start of the encoder fixture's
// `tokenizer` metadata, else t5_tiny_spiece.model (README_TEXT_AND_VAE §2), in the fixture's folder.
std::string spiece_model_of(const io::SafeTensorsFile& file) {
  std::string name = "t5_tiny_spiece.model";
  if (const auto it = file.metadata().find("tokenizer"); it != file.metadata().end()) {
    std::istringstream words(it->second);
    words >> name;
  }
  return (std::filesystem::path(file.path()).parent_path() / name).string();
}

std::vector<int64_t> read_i64(const io::SafeTensorsFile& file, const std::string& name) {
  const io::TensorInfo& info = file.info(name);
  if (info.dtype != "I64") throw std::runtime_error(file.path() + ": tensor '" + name + "' is " + info.dtype + ", expected I64");
  std::vector<int64_t> out(static_cast<size_t>(numel(info.shape)));
  std::memcpy(out.data(), file.raw(name).data(), out.size() * sizeof(int64_t));
  return out;
}

nlohmann::json metadata_json(const io::SafeTensorsFile& file, const std::string& key) {
  try {
    return nlohmann::json::parse(file.metadata_value(key));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(file.path() + ": metadata '" + key + "' is not valid JSON: " + e.what());
  }
}

Tensor<double> as_tensor(const std::vector<int64_t>& values) {
  Tensor<double> t({static_cast<int64_t>(values.size())});
  for (size_t i = 0; i < values.size(); ++i) t.data[i] = static_cast<double>(values[i]);
  return t;
}

// An exact comparison of integer tensors (ids, masks, buckets): max |Δ| must be 0.
void add_exact(Accumulator& group, const std::string& name, const std::vector<int64_t>& ours,
               const std::vector<int64_t>& ref) {
  std::vector<double> o(ours.begin(), ours.end());
  group.add(name, o, as_tensor(ref));
}

// tok.L<L>.* of the tokenizer fixture: every caption through the tokenizer at that length.
GroupResult token_group(const io::SafeTensorsFile& file, const T5Tokenizer& tokenizer, const std::string& prefix,
                        const std::vector<std::string>& captions) {
  Accumulator group(prefix, 0, "abs");
  const std::string ids_name = prefix + ".input_ids", mask_name = prefix + ".attention_mask";
  const Shape& shape = file.info(ids_name).shape;
  if (shape.size() != 2 || shape[0] != static_cast<int64_t>(captions.size()))
    throw std::runtime_error(file.path() + ": tensor '" + ids_name + "' has shape " + shape_string(shape) +
                             ", expected [" + std::to_string(captions.size()) + ", L]");
  const T5Tokens tokens = tokenizer.encode(captions, shape[1]);
  add_exact(group, ids_name, tokens.ids.data, read_i64(file, ids_name));
  add_exact(group, mask_name, tokens.mask.data, read_i64(file, mask_name));
  return group.r;
}

std::vector<std::string> caption_texts(const nlohmann::json& list, const std::string& where) {
  std::vector<std::string> texts;
  for (const auto& entry : list) {
    if (entry.is_string()) texts.push_back(entry.get<std::string>());
    else if (entry.is_object() && entry.contains("text") && entry["text"].is_string())
      texts.push_back(entry["text"].get<std::string>());
    else throw std::runtime_error(where + ": a caption is neither a string nor {name, text}");
  }
  return texts;
}

void check_tokenizer_fixture(const io::SafeTensorsFile& file, Report& report) {
  const T5Tokenizer tokenizer(spiece_model_of(file));
  const std::vector<std::string> captions =
      caption_texts(metadata_json(file, "captions"), file.path() + ": metadata 'captions'");
  for (const char* prefix : {"tok.L32", "tok.L128"}) report.groups.push_back(token_group(file, tokenizer, prefix, captions));
  // Literal "</s>", "<pad>", "<extra_id_0>" in a caption: HF's from_pretrained tokenizer splits them out before
  // SentencePiece, raw SentencePiece (our rule) does not. Informational only (README §2.5); the note counts rows.
  if (file.has("tok_special.L32.input_ids") && file.metadata().count("special_literal_captions")) {
    const std::vector<std::string> special = caption_texts(metadata_json(file, "special_literal_captions"),
                                                           file.path() + ": metadata 'special_literal_captions'");
    const GroupResult g = token_group(file, tokenizer, "tok_special.L32", special);
    GroupResult info;
    info.group = "tok_special.L32 (informational)";
    info.tensors = g.tensors;
    info.ran = false;
    info.note = std::string(g.max_abs == 0 ? "equal to" : "differs from") +
                " HF's special-token splitting; captions never hold special-token text (README §2.5)";
    report.groups.push_back(info);
  }
}

void check_encoder_fixture(const io::SafeTensorsFile& file, Report& report) {
  const T5Config cfg = T5Config::from_json(file.metadata_value("config"), file.path() + ": metadata 'config'");
  const Shape& shape = file.info("input.input_ids").shape;
  if (shape.size() != 2) throw std::runtime_error(file.path() + ": tensor 'input.input_ids' is not [B, L]");
  const int64_t B = shape[0], L = shape[1], D = cfg.d_model, H = cfg.num_heads;
  const std::vector<int64_t> ids = read_i64(file, "input.input_ids"), mask = read_i64(file, "input.attention_mask");

  // The inputs themselves: the fixture's captions through our tokenizer.
  if (file.metadata().count("captions")) {
    const std::string model = spiece_model_of(file);
    Accumulator tokens("input tokens", 0, "abs");
    if (std::filesystem::exists(model)) {
      const T5Tokens ours = T5Tokenizer(model).encode(
          caption_texts(metadata_json(file, "captions"), file.path() + ": metadata 'captions'"), L);
      add_exact(tokens, "input.input_ids", ours.ids.data, ids);
      add_exact(tokens, "input.attention_mask", ours.mask.data, mask);
    } else {
      tokens.r.ran = false;
      tokens.r.note = "no SentencePiece model " + model;
    }
    report.groups.push_back(tokens.r);
  }

  Accumulator buckets("aux.rel_bucket", 0, "abs");
  std::vector<int64_t> ours_buckets;
  const int64_t reach = (file.info("aux.rel_bucket").shape.at(0) - 1) / 2;  // r = −reach … reach
  for (int64_t r = -reach; r <= reach; ++r)
    ours_buckets.push_back(t5_relative_bucket(r, cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance));
  add_exact(buckets, "aux.rel_bucket", ours_buckets, read_i64(file, "aux.rel_bucket"));
  report.groups.push_back(buckets.r);

  T5Encoder<CpuBackend<float>> encoder(cfg);
  encoder.load_weights(io::ShardedSafeTensors::open(file.path()), "param.");
  std::vector<float> out(static_cast<size_t>(B * L * D));
  T5EncoderTrace trace;
  encoder.forward_masked(ids.data(), mask.data(), B, L, out.data(), &trace);
  auto ref = [&](const std::string& name, const Shape& expected) { return file.read<double>(name, expected); };
  const Shape hidden = {B, L, D};

  Accumulator embed("aux.embed", 0, "abs"), bias("aux.position_bias", 0, "abs");
  embed.add("aux.embed", trace.embed, ref("aux.embed", hidden));
  bias.add("aux.position_bias", trace.position_bias, ref("aux.position_bias", {1, H, L, L}));
  report.groups.push_back(embed.r);
  report.groups.push_back(bias.r);

  Accumulator last("out.last_hidden_state", kTolT5Hidden, "rel"), masked("out.masked_hidden_state", kTolT5Hidden, "rel");
  last.add("out.last_hidden_state", trace.last_hidden_state, ref("out.last_hidden_state", hidden));
  masked.add("out.masked_hidden_state", out, ref("out.masked_hidden_state", hidden));
  report.groups.push_back(last.r);
  report.groups.push_back(masked.r);

  Accumulator blocks("aux.block.*", kTolT5Hidden, "rel"), probs("aux.attn_probs.*", kTolT5Probs, "abs");
  for (int64_t k = 0; k < cfg.num_layers; ++k) {
    const std::string n = std::to_string(k);
    blocks.add("aux.block." + n, trace.blocks[k], ref("aux.block." + n, hidden));
    probs.add("aux.attn_probs." + n, trace.attn_probs[k], ref("aux.attn_probs." + n, {B, H, L, L}));
  }
  report.groups.push_back(blocks.r);
  report.groups.push_back(probs.r);

  Accumulator inside("aux.block0.*", kTolT5Hidden, "rel");
  inside.add("aux.block0.ln0", trace.block0_ln0, ref("aux.block0.ln0", hidden));
  inside.add("aux.block0.attn", trace.block0_attn, ref("aux.block0.attn", hidden));
  inside.add("aux.block0.after_attn", trace.block0_after_attn, ref("aux.block0.after_attn", hidden));
  inside.add("aux.block0.ln1", trace.block0_ln1, ref("aux.block0.ln1", hidden));
  inside.add("aux.block0.ff", trace.block0_ff, ref("aux.block0.ff", hidden));
  report.groups.push_back(inside.r);

  // The pipeline's path: each row at its own length (the mask is a prefix of ones in every fixture row).
  Accumulator skipped("encode (padding skipped)", kTolT5Hidden, "rel");
  std::vector<int64_t> lengths(static_cast<size_t>(B), 0);
  bool prefix_masks = true;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < L; ++t) lengths[b] += mask[b * L + t] != 0;
    for (int64_t t = 0; t < L; ++t) prefix_masks &= (mask[b * L + t] != 0) == (t < lengths[b]);
  }
  if (prefix_masks) {
    std::vector<float> encoded(out.size());
    encoder.encode(ids.data(), lengths.data(), B, L, encoded.data());
    skipped.add("out.masked_hidden_state", encoded, ref("out.masked_hidden_state", hidden));
  } else {
    skipped.r.ran = false;
    skipped.r.note = "a mask that is not a prefix of ones";
  }
  report.groups.push_back(skipped.r);
}

}  // namespace

bool is_t5_fixture(const io::SafeTensorsFile& file) {
  return file.has("tok.L32.input_ids") || file.has("param.encoder.final_layer_norm.weight");
}

Report check_t5_file(const std::string& path) {
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(path);
  Report report;
  report.file = path;
  if (file.metadata().count("description")) report.description = file.metadata_value("description");
  if (file.has("tok.L32.input_ids")) check_tokenizer_fixture(file, report);
  else check_encoder_fixture(file, report);
  return report;
}

}  // namespace starflow::core::golden
