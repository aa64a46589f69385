// A feed-forward layer's activation with an optional linear gate (T5 v1.1's gated-gelu: gelu_new(x·W0ᵀ) ⊙
// (x·W1ᵀ)): out = act(a) ⊙ gate, or act(a) without a gate. One op for the gated and the plain form, any of the
// activations of core/ops/activation.h.
#pragma once
#include <cstdint>

#include "core/ops/activation.h"

namespace starflow::core::cpu {

// out, a, gate [n]; gate may be nullptr (no gate). out may alias a or gate.
template <class T>
void gated_activation_forward(T* out, const T* a, const T* gate, int64_t n, Activation act);

// da = dout ⊙ gate ⊙ act'(a), dgate = dout ⊙ act(a) (both =; each skipped when nullptr; gate nullptr: no gate
// and no dgate). act'(0) of relu is 0, as torch's.
template <class T>
void gated_activation_backward(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n, Activation act);

}  // namespace starflow::core::cpu
