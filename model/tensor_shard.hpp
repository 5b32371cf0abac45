#pragma once
// Which of a stage's tensor shards a model holds (Megatron layout: each shard holds some
// attention heads and some MLP columns), and how each matrix of a layer splits over them.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace banyan {

// Which of `degree` tensor shards a model holds (degree 1: the whole width of every layer).
struct TensorShard {
  int rank = 0;
  int degree = 1;
  bool operator==(const TensorShard&) const = default;
};

// "shard 2/4" (ranks counted from 1), for messages and logs.
std::string shard_text(TensorShard shard);

// A split matrix gives each shard a band of its rows (q, k, v, gate and up: the shard's heads and
// MLP columns) or of its columns (o_proj and down_proj, whose products the shards then sum).
enum class ShardSplit { rows, columns };

// How the tensor `name` splits; nullopt for the tensors every shard holds whole (norms, the
// embedding, the classifier).
std::optional<ShardSplit> shard_split(const std::string& name);

// The shape of `shard`'s band of a [rows, cols] matrix.
std::vector<std::int64_t> band_shape(const std::vector<std::int64_t>& shape, ShardSplit split, TensorShard shard);

}  // namespace banyan
