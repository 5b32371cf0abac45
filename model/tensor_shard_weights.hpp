#pragma once
// One tensor shard's part of a model as a weight source: its bands of the split matrices, the
// other tensors whole. `banyan convert --tensor-shards N` writes one file of it per shard, so
// that each shard's weights lie contiguous in its own file: what offloading maps and drops, and
// all a node holding that shard needs on its disk.
#include <filesystem>
#include <memory>
#include <optional>

#include "model/llama_model.hpp"
#include "model/tensor_shard.hpp"
#include "model/weight_source.hpp"

namespace banyan {

// `shard`'s band of the matrix `name` of `source` (split as shard_split says), cut from the
// stored weight in its format when the band keeps whole quantization groups, else encoded from
// f32 as `options` say (f16 when the band's width cannot be grouped). `shape`: the whole
// matrix's, checked (nullopt: as stored). Throws Error naming the tensor.
WeightData shard_band(const WeightSource& source, const std::string& name, ShardSplit split, TensorShard shard,
                      const ModelOptions& options, std::optional<std::vector<std::int64_t>> shape = std::nullopt);

class TensorShardWeights final : public WeightSource {
 public:
  TensorShardWeights(const WeightSource& whole, TensorShard shard, const ModelOptions& options);
  const LlamaConfig& config() const override { return whole_.config(); }
  const std::filesystem::path& origin() const override { return whole_.origin(); }
  TensorShard tensor_shard() const override { return shard_; }
  bool contains(const std::string& name) const override;
  std::vector<std::string> tensor_names() const override;
  HostTensor read(const std::string& name) const override;
  std::optional<WeightData> read_encoded(const std::string& name) const override;

 private:
  const WeightSource& whole_;
  TensorShard shard_;
  ModelOptions options_;
};

// The file of `shard`'s weights that `banyan convert --tensor-shards` writes for `file`:
// llm.banyan -> llm.shard1of2.banyan.
std::filesystem::path shard_file(const std::filesystem::path& file, TensorShard shard);

// The weights tensor shard `shard` of the model at `path` loads: its own file (shard_file) when
// it exists, else nullptr (it cuts its bands from the whole model).
std::unique_ptr<WeightSource> open_shard_file(const std::filesystem::path& path, TensorShard shard);

// The model at `path` (open_weights), or, when only its `degree` tensor shards' files exist
// there, the first shard's file: the model's config and its tokenizer's place either way.
std::unique_ptr<WeightSource> open_model_or_first_shard(const std::filesystem::path& path, int degree);

}  // namespace banyan
