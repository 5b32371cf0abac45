#pragma once
// llama2.c checkpoints (the legacy export): seven int32s (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len), then f32 weights layer-stacked in a fixed order. A negative
// vocab_size means the classifier is stored separately; a positive one that it is the embedding.
#include <filesystem>
#include <memory>

#include "model/weight_source.hpp"

namespace banyan {

std::unique_ptr<WeightSource> open_llama2c(const std::filesystem::path& file);

}  // namespace banyan
