#include "model/converted_file.hpp"

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "model/error.hpp"

namespace banyan {

using nlohmann::json;

bool is_converted_file(const MappedFile& file) {
  return file.size() >= 16 && std::memcmp(file.bytes().data(), kConvertedMagic, 8) == 0;
}

namespace {

class ConvertedFile : public WeightSource {
 public:
  explicit ConvertedFile(const std::filesystem::path& path) : file_(std::make_shared<const MappedFile>(path)) {
    const std::string where = path.string();
    if (!is_converted_file(*file_)) throw Error(where + ": not a banyan converted checkpoint");
    std::uint64_t len = 0;
    std::memcpy(&len, file_->slice(8, 8, "the header length").data(), 8);
    if (len > 100'000'000) throw Error(where + ": corrupt header length");
    const auto header = file_->slice(16, len, "the JSON header");
    json j;
    try {
      j = json::parse(reinterpret_cast<const char*>(header.data()), reinterpret_cast<const char*>(header.data()) + len);
      config_ = parse_hf_config(j.at("config").dump(), where + " (config)");
      if (j.contains("tensor_shard")) {
        shard_ = {j["tensor_shard"].at("rank").get<int>(), j["tensor_shard"].at("degree").get<int>()};
        if (shard_.degree < 1 || shard_.rank < 0 || shard_.rank >= shard_.degree)
          throw Error(where + ": corrupt header: tensor shard " + std::to_string(shard_.rank) + " of " +
                      std::to_string(shard_.degree));
      }
      for (const auto& [name, t] : j.at("tensors").items()) {
        const auto format = parse_format(t.at("format").get<std::string>());
        if (!format) throw Error(where + ": tensor '" + name + "' has unknown format " + t.at("format").dump());
        Entry e{*format, t.at("rows").get<std::int64_t>(), t.at("cols").get<std::int64_t>(),
                t.at("offset").get<std::uint64_t>(), t.at("bytes").get<std::uint64_t>()};
        if (e.rows <= 0 || e.cols <= 0 || e.bytes != format_bytes(e.format, e.rows, e.cols) ||
            !format_fits(e.format, e.cols))
          throw Error(where + ": tensor '" + name + "' has an inconsistent size");
        file_->slice(e.offset, e.bytes, "tensor '" + name + "'");  // truncation shows up here
        entries_[name] = e;
      }
    } catch (const json::exception& e) {
      throw Error(where + ": corrupt header: " + e.what());
    }
  }

  const LlamaConfig& config() const override { return config_; }
  const std::filesystem::path& origin() const override { return file_->path(); }
  TensorShard tensor_shard() const override { return shard_; }
  bool contains(const std::string& name) const override { return entries_.count(name) != 0; }
  std::vector<std::string> tensor_names() const override {
    std::vector<std::string> names;
    for (const auto& [name, e] : entries_) names.push_back(name);
    return names;
  }

  std::optional<WeightData> read_encoded(const std::string& name) const override {
    const Entry& e = entry(name);
    WeightData w;
    w.format = e.format;
    w.rows = e.rows;
    w.cols = e.cols;
    w.bytes = file_->slice(e.offset, e.bytes, "tensor '" + name + "'");
    w.owner = file_;
    w.mapped = true;
    return w;
  }

  HostTensor read(const std::string& name) const override { return decode(*read_encoded(name)); }

 private:
  struct Entry {
    WeightFormat format;
    std::int64_t rows, cols;
    std::uint64_t offset, bytes;
  };
  const Entry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw Error(file_->path().string() + ": missing tensor '" + name + "'");
    return it->second;
  }

  std::shared_ptr<const MappedFile> file_;
  LlamaConfig config_;
  TensorShard shard_;
  std::map<std::string, Entry> entries_;
};

std::uint64_t align64(std::uint64_t n) { return (n + 63) / 64 * 64; }

}  // namespace

std::unique_ptr<WeightSource> open_converted(const std::filesystem::path& file) {
  return std::make_unique<ConvertedFile>(file);
}

void write_converted(const WeightSource& weights, const std::filesystem::path& path,
                     const std::function<void(int, int)>& progress) {
  const auto names = weights.tensor_names();
  // The header comes first, so every tensor's size is needed up front; the encodings are
  // cached by an EncodedWeights source, so reading them twice costs nothing.
  std::vector<WeightData> data;
  json tensors = json::object();
  std::uint64_t offset = 0;
  for (const auto& name : names) {
    auto w = weights.read_encoded(name);
    if (!w) w = encode(weights.read(name), WeightFormat::f32);
    tensors[name] = {{"format", format_name(w->format)}, {"rows", w->rows}, {"cols", w->cols}, {"offset", offset},
                     {"bytes", w->bytes.size()}};
    offset = align64(offset + w->bytes.size());
  }
  json header_json = {{"config", json::parse(hf_config_json(weights.config()))}, {"tensors", tensors}};
  if (const TensorShard s = weights.tensor_shard(); s.degree > 1)
    header_json["tensor_shard"] = {{"rank", s.rank}, {"degree", s.degree}};
  std::string header = header_json.dump();
  // Offsets become absolute, which lengthens each number by at most 20 digits: reserve that.
  const std::uint64_t data_start = align64(16 + header.size() + 20 * names.size());
  for (auto& [name, t] : header_json["tensors"].items()) t["offset"] = t["offset"].get<std::uint64_t>() + data_start;
  header = header_json.dump();
  if (16 + header.size() > data_start) throw Error("convert: header grew past its reserved space");
  header.resize(data_start - 16, ' ');

  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path.string() + ": cannot write");
  out.write(kConvertedMagic, 8);
  const std::uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << header;
  std::uint64_t at = data_start;
  int done = 0;
  for (const auto& name : names) {
    const auto w = weights.read_encoded(name);
    const WeightData d = w ? *w : encode(weights.read(name), WeightFormat::f32);
    const std::uint64_t target = header_json["tensors"][name]["offset"].get<std::uint64_t>();
    out << std::string(target - at, '\0');
    out.write(reinterpret_cast<const char*>(d.bytes.data()), std::streamsize(d.bytes.size()));
    at = target + d.bytes.size();
    if (progress) progress(++done, int(names.size()));
  }
  out.flush();
  if (!out) throw Error(path.string() + ": write failed (disk full?)");
}

}  // namespace banyan
