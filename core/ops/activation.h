// The pointwise activations of a feed-forward layer that the gated-activation op (core/ops/{cpu,cuda}/
// gated_activation.*) computes; shared by both backends' ops and by the configs that name them (T5's
// dense_act_fn), so a config's choice reaches the kernel as one value.
#pragma once

namespace starflow::core {

enum class Activation {
  kGeluTanh,  // "gelu_new": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), T5 v1.1 / flan-t5's gated-gelu
  kGeluErf,   // "gelu": 0.5·x·(1 + erf(x/√2)), exact
  kRelu,      // "relu": max(x, 0), the original T5
};

// The transformers name (ACT2FN key) of an activation.
inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kGeluTanh: return "gelu_new";
    case Activation::kGeluErf: return "gelu";
    case Activation::kRelu: return "relu";
  }
  return "?";
}

}  // namespace starflow::core
