// Plain C++ kernels: the reference the SIMD sets are tested against, and the fallback.
#include <algorithm>
#include <cmath>

#include "cpu/dot_rows.hpp"
#include "cpu/simd_kernels.hpp"
#include "model/dtype.hpp"

namespace banyan::cpu {

namespace {

// A stored f32, f16 (raw 16 bits) or bf16 value.
float as_f32(float v) { return v; }
float as_f32(std::uint16_t h) { return f16_to_f32(h); }
float as_f32(Bf16 b) { return b.value(); }

template <typename W>
float dot_values(const W* w, const float* x, std::int64_t k) {
  double s = 0;
  for (std::int64_t i = 0; i < k; ++i) s += double(as_f32(w[i])) * x[i];
  return float(s);
}

float dot_q8(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float*,
             std::int64_t k) {
  double s = 0;
  for (std::int64_t g = 0; g < k / 32; ++g) {
    std::int32_t d = 0;
    for (int i = 0; i < 32; ++i) d += std::int32_t(w[g * 32 + i]) * qa[g * 32 + i];
    s += double(f16_to_f32(sw[g])) * sa[g] * d;
  }
  return float(s);
}

float dot_q4(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
             std::int64_t k) {
  double s = 0;
  for (std::int64_t g = 0; g < k / 32; ++g) {
    std::int32_t d = 0;
    for (int j = 0; j < 16; ++j) {
      const std::uint8_t b = w[g * 16 + j];
      d += std::int32_t(b & 0x0f) * qa[g * 32 + j] + std::int32_t(b >> 4) * qa[g * 32 + j + 16];
    }
    s += double(f16_to_f32(sw[g])) * (double(sa[g]) * d - ca[g]);
  }
  return float(s);
}

void quantize_row(const float* x, std::int64_t k, std::int8_t* qa, float* sa, float* ca, bool /*for_q4*/) {
  for (std::int64_t g = 0; g < k / 32; ++g) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::abs(x[g * 32 + i]));
    const float scale = amax / 127.0f;
    const float inv = scale > 0 ? 1.0f / scale : 0.0f;
    std::int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      const auto q = std::int8_t(std::lrintf(x[g * 32 + i] * inv));
      qa[g * 32 + i] = q;
      sum += q;
    }
    sa[g] = scale;
    ca[g] = 8.0f * scale * float(sum);
  }
}

template <typename W>
void expand_values(const W* w, std::int64_t k, float* out) {
  for (std::int64_t i = 0; i < k; ++i) out[i] = as_f32(w[i]);
}

void expand_q8(const std::int8_t* w, const std::uint16_t* sw, std::int64_t k, float* out) {
  for (std::int64_t i = 0; i < k; ++i) out[i] = float(w[i]) * f16_to_f32(sw[i / 32]);
}

void expand_q4(const std::uint8_t* w, const std::uint16_t* sw, std::int64_t k, float* out) {
  for (std::int64_t g = 0; g < k / 32; ++g) {
    const float s = f16_to_f32(sw[g]);
    for (int j = 0; j < 16; ++j) {
      out[g * 32 + j] = float(int(w[g * 16 + j] & 0x0f) - 8) * s;
      out[g * 32 + j + 16] = float(int(w[g * 16 + j] >> 4) - 8) * s;
    }
  }
}

float value_at(const void* rows, DType element, std::int64_t i) {
  switch (element) {
    case DType::f16: return as_f32(static_cast<const std::uint16_t*>(rows)[i]);
    case DType::bf16: return as_f32(static_cast<const Bf16*>(rows)[i]);
    default: return as_f32(static_cast<const float*>(rows)[i]);
  }
}

void attend_one(const float* q, const void* k, const void* v, std::int64_t stride, std::int64_t count, int head_dim,
                float scale, DType element, float* scores, AttentionState& st) {
  float block_max = -INFINITY;
  for (std::int64_t r = 0; r < count; ++r) {
    double s = 0;
    for (int d = 0; d < head_dim; ++d) s += double(q[d]) * value_at(k, element, r * stride + d);
    scores[r] = float(s) * scale;
    block_max = std::max(block_max, scores[r]);
  }
  const float m = std::max(st.m, block_max);
  const float rescale = std::exp(st.m - m);
  st.l *= rescale;
  for (int d = 0; d < head_dim; ++d) st.o[d] *= rescale;
  for (std::int64_t r = 0; r < count; ++r) {
    const float p = std::exp(scores[r] - m);
    st.l += p;
    for (int d = 0; d < head_dim; ++d) st.o[d] += p * value_at(v, element, r * stride + d);
  }
  st.m = m;
}

void attend(const float* q, int heads, const void* k, const void* v, std::int64_t stride, std::int64_t count,
            int head_dim, float scale, DType element, float* scores, AttentionState* states) {
  for (int h = 0; h < heads; ++h)
    attend_one(q + h * head_dim, k, v, stride, count, head_dim, scale, element, scores + h * count, states[h]);
}

}  // namespace

const KernelSet& portable_kernels() {
  static const KernelSet set{"portable",
                             dot_each_row<dot_values<float>, float>,
                             dot_each_row<dot_values<std::uint16_t>, std::uint16_t>,
                             dot_each_row<dot_values<Bf16>, Bf16>,
                             dot_each_quantized_row<dot_q8, std::int8_t>,
                             dot_each_quantized_row<dot_q4, std::uint8_t>,
                             quantize_row, expand_values<std::uint16_t>, expand_values<Bf16>, expand_q8, expand_q4, attend,
                             // One row and one token at a time: sgemm soon pays.
                             16, 16};
  return set;
}

}  // namespace banyan::cpu
