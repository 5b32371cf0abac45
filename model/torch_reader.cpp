#include "model/torch_reader.hpp"

#include <optional>

#include "model/error.hpp"
#include "model/torch_pickle.hpp"
#include "model/zip_archive.hpp"

namespace banyan {

namespace {

std::optional<DType> storage_dtype(const std::string& storage_type) {
  if (storage_type == "FloatStorage") return DType::f32;
  if (storage_type == "HalfStorage") return DType::f16;
  if (storage_type == "BFloat16Storage") return DType::bf16;
  return std::nullopt;
}

}  // namespace

void add_torch_file(TensorTable& table, const std::filesystem::path& path) {
  auto file = std::make_shared<const MappedFile>(path);
  const std::string where = path.string();
  if (!ZipArchive::looks_like_zip(*file))
    throw Error(where + ": not a zip archive; the legacy (before PyTorch 1.6) format is not supported, "
                        "re-save it with torch.save");
  const ZipArchive zip(file);

  std::string prefix;  // the archive's top folder, named after the file it was saved as
  for (const auto& [name, member] : zip.members()) {
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) {
      prefix = name.substr(0, name.size() - 8);
      break;
    }
  }
  if (prefix.empty()) throw Error(where + ": no data.pkl in the archive; not a torch.save file");

  for (const auto& t : read_torch_pickle(zip.read(prefix + "data.pkl"), where + " (" + prefix + "data.pkl)")) {
    const auto dtype = storage_dtype(t.storage_type);
    if (!dtype) {
      table.add_unsupported(t.name, "unsupported storage type '" + t.storage_type +
                                        "' (Banyan reads FloatStorage, HalfStorage and BFloat16Storage)");
      continue;
    }
    const std::string member = prefix + "data/" + t.storage_key;
    auto m = zip.members().find(member);
    if (m == zip.members().end())
      throw Error(where + ": tensor '" + t.name + "': storage member '" + member + "' is missing");
    TensorEntry e;
    e.file = file;
    e.dtype = *dtype;
    e.shape = t.shape;
    e.strides = t.strides;
    e.offset = m->second.offset + std::uint64_t(t.storage_offset) * dtype_size(*dtype);
    table.add(t.name, std::move(e));
  }
}

}  // namespace banyan
