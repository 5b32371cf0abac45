#pragma once
// Where a model's weights come from. Every reader presents the same view: Hugging Face tensor
// names (`model.layers.0.self_attn.q_proj.weight`, ...), Hugging Face layouts (nn.Linear's
// [out, in]; q/k rows in the rotate-half RoPE order) and f32 values, whatever the file holds.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "model/llama_config.hpp"
#include "model/tensor_shard.hpp"
#include "model/weight_format.hpp"

namespace banyan {

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  virtual const LlamaConfig& config() const = 0;
  // The file or folder the weights come from, for messages.
  virtual const std::filesystem::path& origin() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual std::vector<std::string> tensor_names() const = 0;
  // Throws Error naming the file and the tensor when it is missing, truncated or of a bad type.
  virtual HostTensor read(const std::string& name) const = 0;
  // The tensor as a backend-format weight, when the source stores it that way (a `banyan
  // convert` file); otherwise nullopt and the caller reads and encodes it.
  virtual std::optional<WeightData> read_encoded(const std::string& name) const { return std::nullopt; }
  // The tensor shard whose part of the model this source holds (model/tensor_shard_weights.hpp):
  // its split matrices are that shard's bands. Degree 1: the whole model.
  virtual TensorShard tensor_shard() const { return {}; }
};

// The error for a tensor of `source` whose shape is not the one the config needs.
Error shape_mismatch(const WeightSource& source, const std::string& name, const std::vector<std::int64_t>& stored,
                     const std::vector<std::int64_t>& wanted);

// Opens a Hugging Face folder (config.json + model.safetensors, a sharded
// model.safetensors.index.json or pytorch_model.bin) or a llama2.c `.bin` checkpoint.
std::unique_ptr<WeightSource> open_weights(const std::filesystem::path& path);

// The names Hugging Face gives the tensors of a LLaMA model (lm_head only when untied).
namespace hf_names {
std::string embed_tokens();
std::string final_norm();
std::string lm_head();
std::string layer(int i, const char* suffix);  // suffix like "self_attn.q_proj.weight"
}  // namespace hf_names

}  // namespace banyan
