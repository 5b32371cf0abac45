#include "cpu/kernels.hpp"

#include <cmath>

namespace banyan::cpu {

void rms_norm_row(const float* x, const float* gamma, float eps, std::int64_t n, float* out) {
  double ss = 0;
  for (std::int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
  for (std::int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * gamma[i];
}

void rope_row(float* row, int heads, int head_dim, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    float* v = row + std::int64_t(h) * head_dim;
    for (int j = 0; j < half; ++j) {
      const float x0 = v[j], x1 = v[j + half];
      v[j] = x0 * cos[j] - x1 * sin[j];
      v[j + half] = x1 * cos[j] + x0 * sin[j];
    }
  }
}

void silu_mul_row(float* gate, const float* up, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}


}  // namespace banyan::cpu
