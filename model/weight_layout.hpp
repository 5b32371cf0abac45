#pragma once
// The weight formats and their group size (weight_format.hpp describes the layouts). Kept apart
// and free of C++20 so that CUDA sources, compiled as C++17 by nvcc, share the same names.
#include <cstdint>

namespace banyan {

enum class WeightFormat : std::uint8_t { f32, f16, q8, q4, bf16 };
inline constexpr int kQuantGroup = 32;

}  // namespace banyan
