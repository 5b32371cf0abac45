#pragma once
// A trained model made as large as a bigger shape without changing what it computes, for
// benchmarks that need a memory-bound LLM with a well-aligned SSM (a trained small model) where
// only small trained models exist. The extra hidden columns, query and key/value heads and MLP
// columns hold zeros where they would feed the real ones, and the extra decoder layers add
// nothing to the residual stream (zero o_proj and down_proj): every product is still computed
// in full, so the model streams and multiplies all of its weights per token like any model of
// that shape, while its logits are the base model's (RMSNorm's weights and epsilon are rescaled
// for the wider mean). Each base query head keeps its key/value head.
#include <memory>

#include "model/weight_source.hpp"

namespace banyan {

struct WideShape {
  int hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0;
};

class WidenedWeights final : public WeightSource {
 public:
  // Throws Error when `shape` is not at least as large as the base in every dimension, its heads
  // are not the base's head size, or its query groups cannot hold the base's.
  WidenedWeights(std::unique_ptr<WeightSource> base, WideShape shape);
  const LlamaConfig& config() const override { return config_; }
  const std::filesystem::path& origin() const override { return base_->origin(); }
  bool contains(const std::string& name) const override;
  std::vector<std::string> tensor_names() const override;
  HostTensor read(const std::string& name) const override;

 private:
  // Row (or column) block of base query head h in the widened q_proj rows / o_proj columns.
  int query_head_at(int h) const;

  std::unique_ptr<WeightSource> base_;
  LlamaConfig config_;
};

}  // namespace banyan
