// Model weights as safetensors under the official ml-starflow state_dict names, with the model's official
// config in the `config` metadata: the interchange format for import, export and sampling.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/models/starflow_model.h"

namespace starflow::core::io {

// The FlowConfig stored in a weights file's `config` metadata; throws "<path>: metadata 'config': ...".
FlowConfig read_config(const SafeTensorsFile& file);

// Loads every parameter of `model` from `file`, where tensor NAME is stored as NAME or as "param.NAME"
// (golden fixtures). Throws "<path>: no tensor 'NAME'" or a shape error naming the expected shape.
template <class T>
void load_weights(StarFlowModel<T>& model, const SafeTensorsFile& file);
// The same into a flat host buffer laid out by `layout` (a model on another backend stages through it).
template <class T>
void load_weights(const ParameterLayout& layout, T* parameters, const SafeTensorsFile& file);

// The deprecated buffers of the official state_dict, unused by the computation but expected by its strict
// loading: `var` (ones [P², D]), `blocks.k.attn_mask` (lower-triangular ones [P²+L]²) and
// `feat_rope.freqs_cos/sin` (zeros [P²+L, head_dim]), with P = pt_seq_len.
struct OfficialBuffer {
  std::string name;
  Shape shape;
  std::vector<float> values;
};
std::vector<OfficialBuffer> official_buffers(const FlowConfig& cfg);

// Writes the parameters (F32), the official buffers and the config (+ extra metadata) to `path` (atomically):
// the complete official state_dict.
template <class T>
void save_weights(const StarFlowModel<T>& model, const std::string& path,
                  std::map<std::string, std::string> metadata = {});

}  // namespace starflow::core::io
