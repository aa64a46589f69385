// Embedding lookup (nn.Embedding, T5's shared.weight): out[i] = table[ids[i]], a plain row gather (no scaling).
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// out [n, D]; ids [n], each in [0, rows of table) (the caller checks: the op does not); table [V, D].
template <class T>
void embedding_forward(T* out, const int64_t* ids, const T* table, int64_t n, int64_t D);

// dtable [V, D] += dout[i] at row ids[i] (accumulates; repeated ids sum in token order).
template <class T>
void embedding_backward(T* dtable, const T* dout, const int64_t* ids, int64_t n, int64_t D);

}  // namespace starflow::core::cpu
