#include "model/weight_source.hpp"

#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/llama2c_reader.hpp"
#include "model/safetensors_reader.hpp"
#include "model/tensor_table.hpp"
#include "model/torch_reader.hpp"

namespace banyan {

namespace hf_names {
std::string embed_tokens() { return "model.embed_tokens.weight"; }
std::string final_norm() { return "model.norm.weight"; }
std::string lm_head() { return "lm_head.weight"; }
std::string layer(int i, const char* suffix) { return "model.layers." + std::to_string(i) + "." + suffix; }
}  // namespace hf_names

Error shape_mismatch(const WeightSource& source, const std::string& name, const std::vector<std::int64_t>& stored,
                     const std::vector<std::int64_t>& wanted) {
  return Error(source.origin().string() + ": tensor '" + name + "' has shape " + shape_string(stored) +
               ", but the config (" + source.config().summary() + ") needs " + shape_string(wanted));
}

namespace {

std::unique_ptr<WeightSource> open_hf_folder(const std::filesystem::path& dir) {
  auto table = std::make_unique<TensorTable>(dir, read_hf_config(dir / "config.json"));
  if (std::filesystem::exists(dir / "model.safetensors")) {
    add_safetensors_file(*table, dir / "model.safetensors");
  } else if (std::filesystem::exists(dir / "model.safetensors.index.json")) {
    add_safetensors_index(*table, dir / "model.safetensors.index.json");
  } else if (std::filesystem::exists(dir / "pytorch_model.bin")) {
    add_torch_file(*table, dir / "pytorch_model.bin");
  } else {
    throw Error(dir.string() +
                ": no weights found (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)");
  }
  return table;
}

}  // namespace

std::unique_ptr<WeightSource> open_weights(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw Error(path.string() + ": no such file or folder");
  if (std::filesystem::is_directory(status)) return open_hf_folder(path);
  const auto name = path.filename().string();
  if (name == "config.json" || name == "model.safetensors" || name == "model.safetensors.index.json" ||
      name == "pytorch_model.bin")
    return open_hf_folder(path.parent_path());
  if (is_converted_file(MappedFile(path))) return open_converted(path);
  return open_llama2c(path);
}

}  // namespace banyan
