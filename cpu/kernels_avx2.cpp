// AVX2 + FMA + F16C kernels: the baseline for x86-64 machines without AVX-512.
#include <immintrin.h>

#include "cpu/dot_rows.hpp"
#include "cpu/simd_kernels.hpp"

namespace banyan::cpu {

namespace {

inline float f16(std::uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

float dot_f32(const float* w, const float* x, std::int64_t k) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < k; ++i) s += w[i] * x[i];
  return s;
}

float dot_f16(const std::uint16_t* w, const float* x, std::int64_t k) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))),
                         _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8))),
                         _mm256_loadu_ps(x + i + 8), a1);
  }
  float s = hsum(_mm256_add_ps(a0, a1));
  for (; i < k; ++i) s += f16(w[i]) * x[i];
  return s;
}

// Sum of u8 x s8 products of one group of 32, as 8 int32 partial sums.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

float dot_q8(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float*,
             std::int64_t k) {
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t g = 0; g < k / 32; ++g) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 32));
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + g * 32));
    // |w| (unsigned) times a with w's sign: the products stay within int16 for maddubs.
    const __m256i d = dot_u8s8(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(av, wv));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(f16(sw[g]) * sa[g]), acc);
  }
  return hsum(acc);
}

float dot_q4(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
             std::int64_t k) {
  __m256 acc = _mm256_setzero_ps();
  const __m128i nibble = _mm_set1_epi8(0x0f);
  float corr = 0;
  for (std::int64_t g = 0; g < k / 32; ++g) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + g * 16));
    const __m256i wv = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), nibble), _mm_and_si128(raw, nibble));
    const __m256i d = dot_u8s8(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + g * 32)));
    const float s = f16(sw[g]);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s * sa[g]), acc);
    corr += s * ca[g];
  }
  return hsum(acc) - corr;
}

void expand_f16(const std::uint16_t* w, std::int64_t k, float* out) {
  std::int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))));
  for (; i < k; ++i) out[i] = f16(w[i]);
}

}  // namespace

const KernelSet* avx2_kernels() {
  // Activation quantization and the int expansions are cheap next to the dot products: the
  // portable versions serve here.
  static const KernelSet set{"avx2",
                             dot_each_row<dot_f32, float>,
                             dot_each_row<dot_f16, std::uint16_t>,
                             dot_each_quantized_row<dot_q8, std::int8_t>,
                             dot_each_quantized_row<dot_q4, std::uint8_t>,
                             portable_kernels().quantize_row,  // plain order for q4 too
                             expand_f16, portable_kernels().expand_q8, portable_kernels().expand_q4,
                             portable_kernels().attend};
  return &set;
}

}  // namespace banyan::cpu
