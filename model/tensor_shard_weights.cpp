#include "model/tensor_shard_weights.hpp"

#include <algorithm>

#include "model/converted_file.hpp"
#include "model/error.hpp"

namespace banyan {

WeightData shard_band(const WeightSource& source, const std::string& name, ShardSplit split, TensorShard shard,
                      const ModelOptions& options, std::optional<std::vector<std::int64_t>> shape) {
  if (!source.contains(name)) throw Error(source.origin().string() + ": missing tensor '" + name + "'");
  auto check = [&](const std::vector<std::int64_t>& stored) {
    if (!shape) shape = stored;
    if (stored != *shape || stored.size() != 2) throw shape_mismatch(source, name, stored, *shape);
  };
  // A stored (`banyan convert`) weight is cut as it is stored, when its groups allow.
  const std::optional<WeightData> stored = source.read_encoded(name);
  if (stored) check({stored->rows, stored->cols});
  HostTensor whole;
  if (!stored) {
    whole = source.read(name);
    check(whole.shape);
  }
  const std::int64_t cols = (*shape)[1];
  const auto band = band_shape(*shape, split, shard);
  const std::int64_t row0 = split == ShardSplit::rows ? shard.rank * band[0] : 0;
  const std::int64_t col0 = split == ShardSplit::columns ? shard.rank * band[1] : 0;
  if (stored && format_fits(stored->format, band[1]) && format_fits(stored->format, col0))
    return slice(*stored, row0, band[0], col0, band[1]);
  if (stored) whole = source.read(name);
  HostTensor cut{band, std::vector<float>(std::size_t(band[0] * band[1]))};
  for (std::int64_t r = 0; r < band[0]; ++r)
    std::copy_n(whole.data.begin() + (row0 + r) * cols + col0, band[1], cut.data.begin() + r * band[1]);
  WeightFormat f = stored ? stored->format : weight_format_for(name, source.config(), options);
  if (!format_fits(f, band[1])) f = WeightFormat::f16;
  return encode(std::move(cut), f);
}

TensorShardWeights::TensorShardWeights(const WeightSource& whole, TensorShard shard, const ModelOptions& options)
    : whole_(whole), shard_(shard), options_(options) {}

namespace {

// The classifier and the final norm are computed by shard 0 only (LlamaModel).
bool held_by(const std::string& name, TensorShard shard) {
  return shard.rank == 0 || (name != hf_names::lm_head() && name != hf_names::final_norm());
}

}  // namespace

bool TensorShardWeights::contains(const std::string& name) const { return held_by(name, shard_) && whole_.contains(name); }

std::vector<std::string> TensorShardWeights::tensor_names() const {
  std::vector<std::string> names = whole_.tensor_names();
  std::erase_if(names, [&](const std::string& n) { return !held_by(n, shard_); });
  return names;
}

HostTensor TensorShardWeights::read(const std::string& name) const {
  const auto split = shard_split(name);
  return split ? decode(shard_band(whole_, name, *split, shard_, options_)) : whole_.read(name);
}

std::optional<WeightData> TensorShardWeights::read_encoded(const std::string& name) const {
  const auto split = shard_split(name);
  if (!split) return whole_.read_encoded(name);
  return shard_band(whole_, name, *split, shard_, options_);
}

std::filesystem::path shard_file(const std::filesystem::path& file, TensorShard shard) {
  std::filesystem::path out = file;
  out.replace_filename(file.stem().string() + ".shard" + std::to_string(shard.rank + 1) + "of" +
                       std::to_string(shard.degree) + file.extension().string());
  return out;
}

std::unique_ptr<WeightSource> open_shard_file(const std::filesystem::path& path, TensorShard shard) {
  const std::filesystem::path file = shard_file(path, shard);
  if (shard.degree <= 1 || !std::filesystem::exists(file)) return nullptr;
  return open_converted(file);
}

std::unique_ptr<WeightSource> open_model_or_first_shard(const std::filesystem::path& path, int degree) {
  const std::filesystem::path first = shard_file(path, {0, degree});
  if (degree > 1 && !std::filesystem::exists(path) && std::filesystem::exists(first)) return open_converted(first);
  return open_weights(path);
}

}  // namespace banyan
