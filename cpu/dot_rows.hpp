#pragma once
// Multi-row dot kernels (KernelSet::dot_*) made from one-row kernels, for the sets without
// their own: each (weight row, activation row) pair is a separate pass; the weight row stays in L1.
#include <cstdint>

namespace banyan::cpu {

template <auto Dot, typename W>
void dot_each_row(const W* w, std::int64_t w_stride, int n, const float* x, std::int64_t stride, std::int64_t k, int m,
                  float* out) {
  for (int r = 0; r < n; ++r)
    for (int t = 0; t < m; ++t) out[r * m + t] = Dot(w + r * w_stride, x + t * stride, k);
}

template <auto Dot, typename W>
void dot_each_quantized_row(const W* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa,
                            const float* ca, std::int64_t k, int m, float* out) {
  const std::int64_t groups = k / 32;
  for (int t = 0; t < m; ++t) out[t] = Dot(w, sw, qa + t * k, sa + t * groups, ca + t * groups, k);
}

}  // namespace banyan::cpu
