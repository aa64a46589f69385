// A Hugging Face T5 folder (flan-t5-xl: config.json, model-0000K-of-0000N.safetensors + index, spiece.model) as
// the pipeline's TextEncoder: T5's tokenizer to L tokens, the encoder at each caption's own length, the masked
// last hidden state [N, L, d_model] (pad rows zero). The empty caption is [</s>]: the null condition.
#pragma once
#include <memory>
#include <span>
#include <string>

#include "core/backends/cpu/cpu_backend.h"
#include "core/models/t5_encoder.h"
#include "core/models/t5_tokenizer.h"
#include "core/models/text_encoder.h"

namespace starflow::core {

class T5TextEncoder final : public TextEncoder {
 public:
  // folder: holds config.json, spiece.model and the weights. L: the token count (the flow's txt_size).
  // Throws one line naming the file at fault.
  T5TextEncoder(const std::string& folder, int64_t L);

  std::string name() const override { return name_; }
  int64_t max_tokens() const override { return L_; }
  int64_t dimensions() const override { return encoder_.config().d_model; }
  TextEmbeddings encode(std::span<const std::string> captions) override;

  const T5Tokenizer& tokenizer() const { return tokenizer_; }
  T5Encoder<CpuBackend<float>>& encoder() { return encoder_; }

 private:
  std::string name_;
  int64_t L_;
  T5Tokenizer tokenizer_;
  T5Encoder<CpuBackend<float>> encoder_;
};

// Whether `path` is a T5 folder (a config.json and a spiece.model in it).
bool is_t5_folder(const std::string& path);

}  // namespace starflow::core
