#include "model/safetensors_reader.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "model/error.hpp"

namespace banyan {

using nlohmann::json;

namespace {

std::optional<DType> parse_dtype(const std::string& s) {
  if (s == "F32") return DType::f32;
  if (s == "F16") return DType::f16;
  if (s == "BF16") return DType::bf16;
  return std::nullopt;
}

}  // namespace

void add_safetensors_file(TensorTable& table, const std::filesystem::path& path) {
  auto file = std::make_shared<const MappedFile>(path);
  const std::string where = path.string();
  const auto len_bytes = file->slice(0, 8, "the header length");
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | std::uint64_t(len_bytes[i]);
  if (header_len > 100'000'000) throw Error(where + ": not a safetensors file (header length " +
                                            std::to_string(header_len) + " is implausible)");
  const auto header = file->slice(8, header_len, "the JSON header");
  json j;
  try {
    j = json::parse(reinterpret_cast<const char*>(header.data()),
                    reinterpret_cast<const char*>(header.data()) + header.size());
  } catch (const json::parse_error& e) {
    throw Error(where + ": corrupt safetensors header: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": corrupt safetensors header: not a JSON object");

  const std::uint64_t data_start = 8 + header_len;
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") continue;
    const std::string tensor_where = where + ": tensor '" + name + "'";
    TensorEntry e;
    e.file = file;
    try {
      const auto dtype_name = info.at("dtype").get<std::string>();
      const auto dtype = parse_dtype(dtype_name);
      if (!dtype) {
        table.add_unsupported(name, "unsupported dtype '" + dtype_name + "' (Banyan reads F32, F16 and BF16)");
        continue;
      }
      e.dtype = *dtype;
      e.shape = info.at("shape").get<std::vector<std::int64_t>>();
      const auto offsets = info.at("data_offsets").get<std::vector<std::uint64_t>>();
      if (offsets.size() != 2 || offsets[1] < offsets[0]) throw Error(tensor_where + ": bad data_offsets");
      std::uint64_t numel = 1;
      for (auto d : e.shape) numel *= std::uint64_t(d);
      if (offsets[1] - offsets[0] != numel * dtype_size(e.dtype))
        throw Error(tensor_where + ": data_offsets span " + std::to_string(offsets[1] - offsets[0]) +
                    " bytes but shape " + shape_string(e.shape) + " needs " +
                    std::to_string(numel * dtype_size(e.dtype)));
      e.offset = data_start + offsets[0];
    } catch (const json::exception& ex) {
      throw Error(tensor_where + ": malformed entry: " + ex.what());
    }
    table.add(name, std::move(e));
  }
}

void add_safetensors_index(TensorTable& table, const std::filesystem::path& index_json) {
  const std::string where = index_json.string();
  std::ifstream in(index_json);
  if (!in) throw Error(where + ": cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw Error(where + ": not valid JSON: " + e.what());
  }
  const auto map = j.find("weight_map");
  if (map == j.end() || !map->is_object()) throw Error(where + ": missing object 'weight_map'");
  std::set<std::string> shards;
  for (const auto& [name, shard] : map->items()) {
    if (!shard.is_string()) throw Error(where + ": weight_map entry '" + name + "' is not a file name");
    shards.insert(shard.get<std::string>());
  }
  for (const auto& shard : shards) add_safetensors_file(table, index_json.parent_path() / shard);
  for (const auto& [name, shard] : map->items())
    if (!table.contains(name))
      throw Error(where + ": tensor '" + name + "' is listed for " + shard.get<std::string>() +
                  " but that file does not hold it");
}

}  // namespace banyan
