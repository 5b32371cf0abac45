#include "model/tensor_shard.hpp"

namespace banyan {

std::string shard_text(TensorShard shard) {
  return "shard " + std::to_string(shard.rank + 1) + "/" + std::to_string(shard.degree);
}

std::optional<ShardSplit> shard_split(const std::string& name) {
  for (const char* suffix : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                             "mlp.gate_proj.weight", "mlp.up_proj.weight"})
    if (name.ends_with(suffix)) return ShardSplit::rows;
  for (const char* suffix : {"self_attn.o_proj.weight", "mlp.down_proj.weight"})
    if (name.ends_with(suffix)) return ShardSplit::columns;
  return std::nullopt;
}

std::vector<std::int64_t> band_shape(const std::vector<std::int64_t>& shape, ShardSplit split, TensorShard shard) {
  return split == ShardSplit::rows ? std::vector{shape[0] / shard.degree, shape[1]}
                                   : std::vector{shape[0], shape[1] / shard.degree};
}

}  // namespace banyan
