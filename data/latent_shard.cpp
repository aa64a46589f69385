// The parts of the shard API that touch no file: names, header comparison, batch allocation.
#include "data/latent_shard.h"

#include <sstream>

namespace starflow::data {

const char* storage_type_name(StorageType type) {
  switch (type) {
    case StorageType::Float16: return "float16";
    case StorageType::BFloat16: return "bfloat16";
    case StorageType::Float32: break;
  }
  return "float32";
}

const char* conditioning_name(Conditioning kind) {
  switch (kind) {
    case Conditioning::ClassLabels: return "class labels";
    case Conditioning::TextEmbeddings: return "text embeddings";
    case Conditioning::None: break;
  }
  return "none";
}

bool ShardHeader::same_content_as(const ShardHeader& other) const {
  // Storage types may differ: both read back as float.
  return autoencoder == other.autoencoder && scaling_factor == other.scaling_factor &&
         latent_shape == other.latent_shape && conditioning == other.conditioning &&
         num_classes == other.num_classes && text_encoder == other.text_encoder &&
         text_length == other.text_length && text_dim == other.text_dim &&
         has_latent_logvar == other.has_latent_logvar && null_text == other.null_text;
}

std::string ShardHeader::describe() const {
  std::ostringstream out;
  out << "autoencoder '" << autoencoder << "' (scaling " << scaling_factor << "), latents "
      << core::shape_string(latent_shape) << " " << storage_type_name(latent_type)
      << (has_latent_logvar ? " with posterior log-variance" : "") << ", conditioning " << conditioning_name(conditioning);
  if (conditioning == Conditioning::ClassLabels) out << " (" << num_classes << " classes)";
  if (conditioning == Conditioning::TextEmbeddings)
    out << " ('" << text_encoder << "', " << text_length << "×" << text_dim << " " << storage_type_name(text_type)
        << ")";
  out << ", " << num_samples << " samples";
  return out.str();
}

SampleBatch SampleBatch::allocate(const ShardHeader& header, int64_t count, bool with_captions) {
  SampleBatch batch;
  core::Shape latent_shape{count};
  latent_shape.insert(latent_shape.end(), header.latent_shape.begin(), header.latent_shape.end());
  batch.latents = core::Tensor<float>(latent_shape);
  if (header.has_latent_logvar) batch.latent_logvar = core::Tensor<float>(latent_shape);
  batch.sample_ids.assign(static_cast<size_t>(count), 0);
  if (header.conditioning == Conditioning::ClassLabels) batch.labels.assign(static_cast<size_t>(count), 0);
  if (header.conditioning == Conditioning::TextEmbeddings) {
    batch.text_embeddings = core::Tensor<float>({count, header.text_length, header.text_dim});
    batch.text_mask = core::Tensor<uint8_t>({count, header.text_length});
  }
  if (with_captions && header.has_captions) batch.captions.assign(static_cast<size_t>(count), std::string());
  return batch;
}

SampleSpans SampleSpans::of(const SampleBatch& batch) {
  SampleSpans spans;
  spans.count = batch.size();
  spans.latents = batch.latents.data;
  spans.latent_logvar = batch.latent_logvar.data;
  spans.sample_ids = batch.sample_ids;
  spans.labels = batch.labels;
  spans.text_embeddings = batch.text_embeddings.data;
  spans.text_mask = batch.text_mask.data;
  spans.captions = batch.captions;
  return spans;
}

}  // namespace starflow::data
