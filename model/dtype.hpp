#pragma once
// Element types of stored tensors and their conversion to f32.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace banyan {

enum class DType : std::uint8_t { f32, f16, bf16 };

std::string_view dtype_name(DType t);
std::size_t dtype_size(DType t);

// IEEE binary16 <-> binary32, round to nearest even.
float f16_to_f32(std::uint16_t h);
std::uint16_t f32_to_f16(float f);

inline float bf16_to_f32(std::uint16_t b) {
  std::uint32_t bits = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
std::uint16_t f32_to_bf16(float f);

// Converts `out.size()` elements of type `type` starting at `src` (possibly unaligned) to f32.
void convert_to_f32(DType type, const void* src, std::span<float> out);

}  // namespace banyan
