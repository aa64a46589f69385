// The flow head's options, shared by the CPU and CUDA ops (core/ops/{cpu,cuda}/flow_head.h) and the models: a
// type of core itself, so that an unqualified call never finds both backends' functions by argument lookup.
#pragma once

namespace starflow::core {

struct FlowHeadOptions {
  double soft_clip = 4.0;  // s > 0: o ← s·tanh(o/s) on all 2D outputs; 0 disables
  bool softplus = true;    // σ = softplus(a + ln(e−1)); false: σ = exp(a)
};

}  // namespace starflow::core
