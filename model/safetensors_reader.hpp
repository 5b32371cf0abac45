#pragma once
// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets}, then the raw little-endian data.
#include <filesystem>

#include "model/tensor_table.hpp"

namespace banyan {

// Adds every tensor of one .safetensors file to `table`.
void add_safetensors_file(TensorTable& table, const std::filesystem::path& file);

// Adds the shards listed in a model.safetensors.index.json ("weight_map": name -> shard file).
void add_safetensors_index(TensorTable& table, const std::filesystem::path& index_json);

}  // namespace banyan
