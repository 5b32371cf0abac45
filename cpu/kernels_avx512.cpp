// AVX-512 kernels (F, BW, VL, DQ, VNNI) with F16C. Compiled with those flags; only called when
// the CPU reports them (simd_dispatch.cpp).
#include <immintrin.h>

#include "cpu/simd_kernels.hpp"

namespace banyan::cpu {

namespace {

inline float f16(std::uint16_t h) { return _cvtsh_ss(h); }

float dot_f32(const float* w, const float* x, std::int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i + 16 <= k; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
  if (i < k) {
    const __mmask16 m = __mmask16((1u << (k - i)) - 1);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, x + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float dot_f16(const std::uint16_t* w, const float* x, std::int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i))),
                         _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i + 16))),
                         _mm512_loadu_ps(x + i + 16), a1);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < k; ++i) s += f16(w[i]) * x[i];
  return s;
}

// The two groups' scales, each repeated over the 8 int32 lanes that hold that group's sums.
inline __m512 pair_scales(float a, float b) {
  return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

float dot_q8(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, std::int64_t k) {
  __m512 acc = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  std::int64_t g = 0;
  for (; (g + 2) * 32 <= k; g += 2) {
    const __m512i wv = _mm512_loadu_si512(w + g * 32);
    const __m512i av = _mm512_loadu_si512(qa + g * 32);
    // u8 x s8 products: |w| times a with w's sign moved onto it.
    const __m512i a_signed = _mm512_mask_sub_epi8(av, _mm512_movepi8_mask(wv), zero, av);
    const __m512i d = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wv), a_signed);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), pair_scales(f16(sw[g]) * sa[g], f16(sw[g + 1]) * sa[g + 1]), acc);
  }
  float s = _mm512_reduce_add_ps(acc);
  for (; g * 32 < k; ++g) {
    std::int32_t d = 0;
    for (int i = 0; i < 32; ++i) d += std::int32_t(w[g * 32 + i]) * qa[g * 32 + i];
    s += f16(sw[g]) * sa[g] * float(d);
  }
  return s;
}

float dot_q4(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
             std::int64_t k) {
  __m512 acc = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  float corr = 0;
  std::int64_t g = 0;
  for (; (g + 2) * 32 <= k; g += 2) {
    // 32 bytes = two groups of 16; low nibbles are weights 0..15 of a group, high ones 16..31.
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 16));
    const __m256i lo = _mm256_and_si256(raw, nibble);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
    __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // [A_lo B_lo A_hi B_hi]
    wv = _mm512_shuffle_i64x2(wv, wv, _MM_SHUFFLE(3, 1, 2, 0));          // [A_lo A_hi B_lo B_hi]
    const __m512i d = _mm512_dpbusd_epi32(zero, wv, _mm512_loadu_si512(qa + g * 32));
    const float s0 = f16(sw[g]), s1 = f16(sw[g + 1]);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), pair_scales(s0 * sa[g], s1 * sa[g + 1]), acc);
    corr += s0 * ca[g] + s1 * ca[g + 1];
  }
  float s = _mm512_reduce_add_ps(acc) - corr;
  for (; g * 32 < k; ++g) {
    std::int32_t d = 0;
    for (int j = 0; j < 16; ++j) {
      const std::uint8_t b = w[g * 16 + j];
      d += std::int32_t(b & 0x0f) * qa[g * 32 + j] + std::int32_t(b >> 4) * qa[g * 32 + j + 16];
    }
    s += f16(sw[g]) * (sa[g] * float(d) - ca[g]);
  }
  return s;
}

void quantize_row(const float* x, std::int64_t k, std::int8_t* qa, float* sa, float* ca) {
  const __m512 sign_off = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (std::int64_t g = 0; g < k / 32; ++g) {
    const __m512 v0 = _mm512_loadu_ps(x + g * 32), v1 = _mm512_loadu_ps(x + g * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, sign_off), _mm512_and_ps(v1, sign_off)));
    const float scale = amax / 127.0f;
    const __m512 inv = _mm512_set1_ps(scale > 0 ? 1.0f / scale : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qa + g * 32), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qa + g * 32 + 16), _mm512_cvtsepi32_epi8(q1));
    sa[g] = scale;
    ca[g] = 8.0f * scale * float(_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1)));
  }
}

void expand_f16(const std::uint16_t* w, std::int64_t k, float* out) {
  std::int64_t i = 0;
  for (; i + 16 <= k; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i))));
  for (; i < k; ++i) out[i] = f16(w[i]);
}

void expand_q8(const std::int8_t* w, const std::uint16_t* sw, std::int64_t k, float* out) {
  for (std::int64_t g = 0; g < k / 32; ++g) {
    const __m512 s = _mm512_set1_ps(f16(sw[g]));
    for (int h = 0; h < 2; ++h) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + g * 32 + h * 16));
      _mm512_storeu_ps(out + g * 32 + h * 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), s));
    }
  }
}

void expand_q4(const std::uint8_t* w, const std::uint16_t* sw, std::int64_t k, float* out) {
  const __m128i nibble = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  for (std::int64_t g = 0; g < k / 32; ++g) {
    const __m512 s = _mm512_set1_ps(f16(sw[g]));
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + g * 16));
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, nibble), eight);
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), nibble), eight);
    _mm512_storeu_ps(out + g * 32, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), s));
    _mm512_storeu_ps(out + g * 32 + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), s));
  }
}

}  // namespace

const KernelSet* avx512_kernels() {
  static const KernelSet set{"avx512", dot_f32,      dot_f16,   dot_q8,   dot_q4,
                             quantize_row, expand_f16, expand_q8, expand_q4};
  return &set;
}

}  // namespace banyan::cpu
