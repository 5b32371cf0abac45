#pragma once
// A WeightSource over memory-mapped files holding tensors at known offsets: what the
// safetensors, PyTorch and llama2.c readers all reduce to once their headers are parsed.
#include <map>
#include <memory>

#include "model/dtype.hpp"
#include "model/mapped_file.hpp"
#include "model/weight_source.hpp"

namespace banyan {

struct TensorEntry {
  std::shared_ptr<const MappedFile> file;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;  // in elements; empty means contiguous row-major
  std::uint64_t offset = 0;           // byte offset of element 0 in the file
  // llama2.c / Meta checkpoints order each head's q/k rows as interleaved RoPE pairs; a
  // non-zero count of heads here reorders the rows into Hugging Face's rotate-half order.
  int interleaved_rope_heads = 0;
};

class TensorTable : public WeightSource {
 public:
  TensorTable(std::filesystem::path origin, LlamaConfig config)
      : origin_(std::move(origin)), config_(config) {}

  // Checks the entry's byte range against its file now, so truncation is reported at open time.
  void add(const std::string& name, TensorEntry entry);
  // A tensor the file holds in a type Banyan cannot use; reading it names the reason.
  void add_unsupported(const std::string& name, std::string reason);

  const LlamaConfig& config() const override { return config_; }
  const std::filesystem::path& origin() const override { return origin_; }
  bool contains(const std::string& name) const override {
    return entries_.count(name) != 0 || unsupported_.count(name) != 0;
  }
  std::vector<std::string> tensor_names() const override;
  HostTensor read(const std::string& name) const override;

 private:
  std::filesystem::path origin_;
  LlamaConfig config_;
  std::map<std::string, TensorEntry> entries_;
  std::map<std::string, std::string> unsupported_;
};

// Hugging Face's permutation of q/k rows: row (h, i, t) of the interleaved layout, where
// t in {0,1} is the element of RoPE pair i, becomes row (h, t, i). Applied in place.
void interleaved_to_rotate_half(HostTensor& t, int heads);

}  // namespace banyan
