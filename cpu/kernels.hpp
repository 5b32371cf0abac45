#pragma once
// Row kernels of the CPU backend, on plain f32 arrays. Each works on one row so the backend
// can spread rows over threads.
#include <cstdint>

namespace banyan::cpu {

void rms_norm_row(const float* x, const float* gamma, float eps, std::int64_t n, float* out);
// Rotates the heads of one row in place (rotate-half layout) by the angles in cos/sin [head_dim/2].
void rope_row(float* row, int heads, int head_dim, const float* cos, const float* sin);
// gate[i] = silu(gate[i]) * up[i]
void silu_mul_row(float* gate, const float* up, std::int64_t n);

}  // namespace banyan::cpu
