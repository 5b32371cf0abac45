#include "model/tensor_table.hpp"

#include <algorithm>

#include "model/error.hpp"

namespace banyan {

std::int64_t HostTensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> s(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

// Bytes from element 0 to one past the furthest element the shape and strides can reach.
std::uint64_t byte_extent(const TensorEntry& e) {
  std::int64_t last = 0;
  for (std::size_t i = 0; i < e.shape.size(); ++i) {
    if (e.shape[i] == 0) return 0;
    if (e.strides[i] < 0) throw Error("negative strides are not supported");
    last += (e.shape[i] - 1) * e.strides[i];
  }
  return std::uint64_t(last + 1) * dtype_size(e.dtype);
}

bool is_contiguous(const TensorEntry& e) { return e.strides == contiguous_strides(e.shape); }

}  // namespace

void TensorTable::add(const std::string& name, TensorEntry entry) {
  for (auto d : entry.shape)
    if (d < 0) throw Error(entry.file->path().string() + ": tensor '" + name + "' has a negative dimension");
  if (entry.strides.empty()) entry.strides = contiguous_strides(entry.shape);
  if (entry.strides.size() != entry.shape.size())
    throw Error(entry.file->path().string() + ": tensor '" + name + "' has mismatched shape and strides");
  entry.file->slice(entry.offset, byte_extent(entry), "tensor '" + name + "'");
  entries_[name] = std::move(entry);
}

void TensorTable::add_unsupported(const std::string& name, std::string reason) {
  unsupported_[name] = std::move(reason);
}

std::vector<std::string> TensorTable::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : entries_) names.push_back(name);
  for (const auto& [name, reason] : unsupported_) names.push_back(name);
  return names;
}

HostTensor TensorTable::read(const std::string& name) const {
  if (auto u = unsupported_.find(name); u != unsupported_.end())
    throw Error(origin_.string() + ": tensor '" + name + "': " + u->second);
  auto it = entries_.find(name);
  if (it == entries_.end()) throw Error(origin_.string() + ": missing tensor '" + name + "'");
  const TensorEntry& e = it->second;
  HostTensor t;
  t.shape = e.shape;
  t.data.resize(std::size_t(t.numel()));
  const auto bytes = e.file->slice(e.offset, byte_extent(e), "tensor '" + name + "'");
  if (is_contiguous(e)) {
    convert_to_f32(e.dtype, bytes.data(), t.data);
  } else {
    // Strided (a view PyTorch saved without copying): gather element by element.
    const std::size_t esize = dtype_size(e.dtype);
    std::vector<std::int64_t> index(e.shape.size(), 0);
    for (std::size_t out = 0; out < t.data.size(); ++out) {
      std::int64_t off = 0;
      for (std::size_t d = 0; d < index.size(); ++d) off += index[d] * e.strides[d];
      convert_to_f32(e.dtype, bytes.data() + off * esize, {&t.data[out], 1});
      for (std::size_t d = index.size(); d-- > 0;) {
        if (++index[d] < e.shape[d]) break;
        index[d] = 0;
      }
    }
  }
  if (e.interleaved_rope_heads > 0) interleaved_to_rotate_half(t, e.interleaved_rope_heads);
  return t;
}

void interleaved_to_rotate_half(HostTensor& t, int heads) {
  if (t.shape.size() != 2 || t.shape[0] % (2 * heads) != 0)
    throw Error("cannot reorder RoPE rows of a tensor shaped " + shape_string(t.shape));
  const std::int64_t cols = t.shape[1];
  const std::int64_t head_rows = t.shape[0] / heads;
  const std::int64_t pairs = head_rows / 2;
  std::vector<float> head(std::size_t(head_rows * cols));
  for (int h = 0; h < heads; ++h) {
    float* base = t.data.data() + h * head_rows * cols;
    std::copy(base, base + head.size(), head.begin());
    for (std::int64_t i = 0; i < pairs; ++i)
      for (std::int64_t k = 0; k < 2; ++k)
        std::copy_n(head.data() + (2 * i + k) * cols, cols, base + (k * pairs + i) * cols);
  }
}

}  // namespace banyan
