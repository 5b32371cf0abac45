#pragma once
// How a weight matrix is stored for the backends, and the conversions into each format.
//   f32, f16, bf16: row-major values.
//   q8: groups of 32 along each row; per group one f16 scale and 32 int8 values,
//       w = q * scale (symmetric, q in [-127, 127]).
//   q4: groups of 32 along each row; per group one f16 scale and 16 bytes: byte j holds weight j
//       in its low nibble and weight j + 16 in its high nibble, w = (nibble - 8) * scale. The
//       largest-magnitude weight of a group is stored as -8 (the scale takes its sign), so all 16
//       levels are used.
// A quantized matrix is two arrays, 64-byte aligned: all rows' quants, then all rows' scales.
// This is also the layout of `banyan convert` files, so they load by mapping, not converting.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "model/dtype.hpp"
#include "model/host_tensor.hpp"
#include "model/weight_layout.hpp"

namespace banyan {

std::string_view format_name(WeightFormat f);
// Parses "f32", "f16", "bf16", "int8"/"q8", "int4"/"q4".
std::optional<WeightFormat> parse_format(std::string_view name);
// f32, f16 or bf16: plain values, no groups or scales.
constexpr bool is_float_format(WeightFormat f) {
  return f == WeightFormat::f32 || f == WeightFormat::f16 || f == WeightFormat::bf16;
}
// Bits a weight costs in this format, scales included (for reports: q4 is 4.5).
double bits_per_weight(WeightFormat f);

struct WeightData {
  WeightFormat format = WeightFormat::f32;
  std::int64_t rows = 0, cols = 0;
  std::span<const std::byte> bytes;  // the format's layout
  std::shared_ptr<const void> owner; // keeps `bytes` alive: an owned buffer or a file mapping
  bool mapped = false;               // `bytes` lie in a read-only file mapping: its pages may be dropped

  std::size_t quant_bytes() const;   // q8/q4: size of the quants array
  const std::byte* quants() const { return bytes.data(); }
  const std::uint16_t* scales() const;  // q8/q4: f16 scales, rows * cols / 32
};

// Bytes a matrix of this shape takes in this format.
std::size_t format_bytes(WeightFormat f, std::int64_t rows, std::int64_t cols);
std::size_t quant_bytes(WeightFormat f, std::int64_t rows, std::int64_t cols);

// Whether a matrix with `cols` columns can be stored in `f` (quantized formats need whole groups).
bool format_fits(WeightFormat f, std::int64_t cols);

// Converts a (1-D or 2-D) f32 tensor into `f`; f32 takes the tensor's buffer without copying.
WeightData encode(HostTensor tensor, WeightFormat f);

// Rows [row0, row0 + rows) and columns [col0, col0 + cols) of a matrix, in its format (a tensor
// shard's part of a stored weight, without decoding it). Quantized formats cut whole groups only:
// col0 and cols must be multiples of 32. Throws Error for a band outside the matrix.
WeightData slice(const WeightData& w, std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols);

// Row r of the matrix as f32, the reference every kernel is tested against.
void decode_row(const WeightData& w, std::int64_t r, float* out);
// The whole weight as f32, shaped as it was encoded: [rows, cols], or [cols] for one row.
HostTensor decode(const WeightData& w);

}  // namespace banyan
