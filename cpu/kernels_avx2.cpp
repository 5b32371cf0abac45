// AVX2 + FMA + F16C kernels: the baseline for x86-64 machines without AVX-512.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/count_dispatch.hpp"
#include "cpu/prefetch.hpp"
#include "cpu/simd_kernels.hpp"

namespace banyan::cpu {

namespace {

inline float f16(std::uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Eight weights as f32, from f32 or f16 storage; one weight for the scalar tail.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const std::uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load8(const Bf16* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
inline float load1(const float* p) { return *p; }
inline float load1(const std::uint16_t* p) { return f16(*p); }
inline float load1(const Bf16* p) { return p->value(); }

// R weight rows against M activation rows, each weight vector loaded once for the M tokens and
// each activation vector once for the R rows (R * M <= 8: AVX2 has 16 vector registers). U
// accumulators per pair keep four multiply-add chains going when R * M is small. Prefetching as
// the AVX-512 set does (kernels_avx512.cpp, dot_rows).
template <int R, int M, typename W>
void dot_tile(const W* w, std::int64_t w_stride, const float* x, std::int64_t stride, std::int64_t k, float* out,
              int out_stride) {
  static_assert(R * M <= 8);
  constexpr int U = R * M >= 4 ? 1 : 4 / (R * M);
  __m256 a[R][M][U];
  for (auto& row : a)
    for (auto& pair : row)
      for (auto& v : pair) v = _mm256_setzero_ps();
  auto step = [&](std::int64_t i, int u) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) {
      if (i * std::int64_t(sizeof(W)) % 64 == 0) {  // once per cache line
        if constexpr (R == 1)
          prefetch_ahead(w + i);
        else
          _mm_prefetch(reinterpret_cast<const char*>(w + (r + R) * w_stride + i), _MM_HINT_T1);
      }
      wv[r] = load8(w + r * w_stride + i);
    }
    for (int t = 0; t < M; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * stride + i);
      for (int r = 0; r < R; ++r) a[r][t][u] = _mm256_fmadd_ps(wv[r], xv, a[r][t][u]);
    }
  };
  std::int64_t i = 0;
  for (; i + 8 * U <= k; i += 8 * U)
    for (int u = 0; u < U; ++u) step(i + 8 * u, u);
  for (; i + 8 <= k; i += 8) step(i, 0);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < M; ++t) {
      __m256 sum = a[r][t][0];
      for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, a[r][t][u]);
      float s = hsum(sum);
      for (std::int64_t j = i; j < k; ++j) s += load1(w + r * w_stride + j) * x[t * stride + j];
      out[r * out_stride + t] = s;
    }
}

// KernelSet::dot_f32 / dot_f16: n weight rows (1..4) against m tokens (1..6), two tokens at a time.
template <typename W>
void float_dots(const W* w, std::int64_t w_stride, int n, const float* x, std::int64_t stride, std::int64_t k, int m,
                float* out) {
  static_assert(kDotWeightRows == 4);
  auto tile = [&](auto rows, auto tokens, int t) {
    dot_tile<decltype(rows)::value, decltype(tokens)::value>(w, w_stride, x + t * stride, stride, k, out + t, m);
  };
  auto rows_at = [&](auto tokens, int t) { with_count(n, [&](auto rows) { tile(rows, tokens, t); }); };
  int t = 0;
  for (; t + 2 <= m; t += 2) rows_at(std::integral_constant<int, 2>{}, t);
  if (t < m) rows_at(std::integral_constant<int, 1>{}, t);
}

// Sum of u8 x s8 products of one group of 32, as 8 int32 partial sums.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// One weight row against M tokens (activation row t at qa + t * k, sa and ca + t * k / 32),
// reading each weight group once. `group(g, a)` adds group g into the accumulators a[t]; groups
// alternate between two sets of them, so that each token keeps two multiply-add chains going.
template <int M, typename Group>
void each_group(std::int64_t groups, float* out, Group&& group) {
  __m256 even[M], odd[M];
  for (int t = 0; t < M; ++t) even[t] = odd[t] = _mm256_setzero_ps();
  std::int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    group(g, even);
    group(g + 1, odd);
  }
  if (g < groups) group(g, even);
  for (int t = 0; t < M; ++t) out[t] = hsum(_mm256_add_ps(even[t], odd[t]));
}

template <int M>
void dot_q8(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float*,
            std::int64_t k, float* out) {
  const std::int64_t groups = k / 32;
  each_group<M>(groups, out, [&](std::int64_t g, __m256* acc) {
    if (g % 2 == 0) prefetch_ahead(w + g * 32);
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 32));
    const __m256i magnitude = _mm256_sign_epi8(wv, wv);
    const float s = f16(sw[g]);
    for (int t = 0; t < M; ++t) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + t * k + g * 32));
      // |w| (unsigned) times a with w's sign: the products stay within int16 for maddubs.
      const __m256i d = dot_u8s8(magnitude, _mm256_sign_epi8(av, wv));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s * sa[t * groups + g]), acc[t]);
    }
  });
}

// q4 activations: in every block of 8 whole groups, each pair of groups is stored as [a0..15 of
// both] then [a16..31 of both], matching the low and high nibbles of the pair's 32 weight bytes.
// Fewer than 8 groups at the end keep the plain order.
constexpr std::int64_t kQ4Block = 8;
void quantize_row(const float* x, std::int64_t k, std::int8_t* qa, float* sa, float* ca, bool for_q4) {
  portable_kernels().quantize_row(x, k, qa, sa, ca, false);
  if (!for_q4) return;
  for (std::int64_t g = 0; g + kQ4Block <= k / 32; g += kQ4Block)
    for (std::int64_t pair = g; pair < g + kQ4Block; pair += 2) {
      std::int8_t* p = qa + pair * 32;
      const __m128i second_half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 16), _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 32), second_half);
    }
}

// One q4 weight row against M tokens. A pair of groups is one 32-byte load: its low nibbles
// meet the pair's first 32 activations, the high ones the next 32, and the two products' int16
// sums add before widening (at most 2 x 2 x 15 x 127). Lanes 0-3 of the result are the first
// group's, 4-7 the second's; the scales of 8 groups are formed at once and spread to match.
template <int M>
void dot_q4(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
            std::int64_t k, float* out) {
  const std::int64_t groups = k / 32;
  const __m256i nibble = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  __m256 even[M], odd[M], corr[M];
  for (int t = 0; t < M; ++t) even[t] = odd[t] = corr[t] = _mm256_setzero_ps();
  auto pair_dot = [&](std::int64_t g, int t) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 16));
    const __m256i lo = _mm256_and_si256(raw, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
    const std::int8_t* a = qa + t * k + g * 32;
    const __m256i sums = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a))),
                                          _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 32))));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, ones));
  };
  auto spread = [](__m256 scales, int pair) {  // [scale of group 2p] x 4, [scale of group 2p + 1] x 4
    return _mm256_permutevar8x32_ps(scales, _mm256_setr_epi32(2 * pair, 2 * pair, 2 * pair, 2 * pair, 2 * pair + 1,
                                                              2 * pair + 1, 2 * pair + 1, 2 * pair + 1));
  };
  std::int64_t g = 0;
  for (; g + kQ4Block <= groups; g += kQ4Block) {
    prefetch_ahead(w + g * 16);
    prefetch_ahead(w + g * 16 + 64);
    const __m256 swf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sw + g)));
    for (int t = 0; t < M; ++t) {
      const __m256 scales = _mm256_mul_ps(swf, _mm256_loadu_ps(sa + t * groups + g));
      corr[t] = _mm256_fmadd_ps(swf, _mm256_loadu_ps(ca + t * groups + g), corr[t]);
      even[t] = _mm256_fmadd_ps(pair_dot(g, t), spread(scales, 0), even[t]);
      odd[t] = _mm256_fmadd_ps(pair_dot(g + 2, t), spread(scales, 1), odd[t]);
      even[t] = _mm256_fmadd_ps(pair_dot(g + 4, t), spread(scales, 2), even[t]);
      odd[t] = _mm256_fmadd_ps(pair_dot(g + 6, t), spread(scales, 3), odd[t]);
    }
  }
  const __m128i nibble16 = _mm256_castsi256_si128(nibble);
  for (int t = 0; t < M; ++t) {
    float s = hsum(_mm256_add_ps(even[t], odd[t])) - hsum(corr[t]);
    for (std::int64_t h = g; h < groups; ++h) {  // fewer than 8 groups left, in plain order
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + h * 16));
      const __m256i wv =
          _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), nibble16), _mm_and_si128(raw, nibble16));
      const __m256i d = dot_u8s8(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + t * k + h * 32)));
      const float scale = f16(sw[h]);
      s += hsum(_mm256_cvtepi32_ps(d)) * scale * sa[t * groups + h] - scale * ca[t * groups + h];
    }
    out[t] = s;
  }
}

// The quantized kernels for a run-time token count m (cpu/count_dispatch.hpp: 1..4).
static_assert(kMaxDotRows == 4);
void dots_q8(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
             std::int64_t k, int m, float* out) {
  with_count(m, [&](auto tokens) { dot_q8<tokens>(w, sw, qa, sa, ca, k, out); });
}
void dots_q4(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
             std::int64_t k, int m, float* out) {
  with_count(m, [&](auto tokens) { dot_q4<tokens>(w, sw, qa, sa, ca, k, out); });
}

template <typename W>
void expand(const W* w, std::int64_t k, float* out) {
  std::int64_t i = 0;
  for (; i + 8 <= k; i += 8) _mm256_storeu_ps(out + i, load8(w + i));
  for (; i < k; ++i) out[i] = load1(w + i);
}

// exp(x) for x <= 0: 2^(x log2 e) split into 2^n (built in the exponent bits; n >= -126, below
// which the result is 0 to float precision anyway) and 2^f, |f| <= 1/2, by a degree-6 Taylor
// polynomial of e^(f ln 2) (relative error under 2e-7), as the AVX-512 set's.
inline __m256 exp_ps(__m256 x) {
  const __m256 t = _mm256_max_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _mm256_set1_ps(-126.0f));
  const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_mul_ps(_mm256_sub_ps(t, n), _mm256_set1_ps(0.69314718f));
  __m256 p = _mm256_set1_ps(1.0f / 720);
  for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c));
  const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
}

// 8 keys or values of a row, as f32.
inline __m256 load8(const void* rows, DType element, std::int64_t at) {
  switch (element) {
    case DType::f16: return load8(static_cast<const std::uint16_t*>(rows) + at);
    case DType::bf16: return load8(static_cast<const Bf16*>(rows) + at);
    default: return load8(static_cast<const float*>(rows) + at);
  }
}

// Eight vectors summed across their lanes at once: lane i of the result is the sum of v[i].
inline __m256 sum_lanes8(const __m256 (&v)[8]) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));  // rows 0-3, per half
  const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));  // rows 4-7, per half
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

// KernelSet::attend for head_dim a multiple of 8, in the AVX-512 set's three passes: the scores
// of 8 key rows at a time for every head while they are in L1; each head's softmax, folded into
// its state; then each value row's 8 columns at a time for up to 8 heads at once.
void attend(const float* q, int heads, const void* k, const void* v, std::int64_t stride, std::int64_t count,
            int head_dim, float scale, DType element, float* scores, AttentionState* states) {
  if (head_dim % 8 != 0)
    return portable_kernels().attend(q, heads, k, v, stride, count, head_dim, scale, element, scores, states);
  for (std::int64_t r = 0; r < count; r += 8) {
    const int rows = int(std::min<std::int64_t>(8, count - r));
    for (int h = 0; h < heads; ++h) {
      __m256 acc[8];
      for (int i = 0; i < 8; ++i) {
        acc[i] = _mm256_setzero_ps();
        if (i < rows)
          for (int d = 0; d < head_dim; d += 8)
            acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * head_dim + d), load8(k, element, (r + i) * stride + d), acc[i]);
      }
      alignas(32) float block[8];
      _mm256_store_ps(block, _mm256_mul_ps(sum_lanes8(acc), _mm256_set1_ps(scale)));
      std::copy_n(block, rows, scores + h * count + r);
    }
  }
  for (int h = 0; h < heads; ++h) {
    float* s = scores + h * count;
    AttentionState& st = states[h];
    const float m = std::max(st.m, *std::max_element(s, s + count));
    const float rescale = std::exp(st.m - m);  // 0 for the first block (st.m = -inf)
    __m256 lsum = _mm256_setzero_ps();
    std::int64_t r = 0;
    for (; r + 8 <= count; r += 8) {
      const __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + r), _mm256_set1_ps(m)));
      _mm256_storeu_ps(s + r, p);
      lsum = _mm256_add_ps(lsum, p);
    }
    float l = hsum(lsum);
    for (; r < count; ++r) l += (s[r] = std::exp(s[r] - m));
    for (int d = 0; d < head_dim; d += 8)
      _mm256_storeu_ps(st.o + d, _mm256_mul_ps(_mm256_loadu_ps(st.o + d), _mm256_set1_ps(rescale)));
    st.l = st.l * rescale + l;
    st.m = m;
  }
  constexpr int H = 8;
  for (int g = 0; g < heads; g += H) {
    const int n = std::min(H, heads - g);
    for (int d = 0; d < head_dim; d += 8) {
      __m256 o[H];
      for (int j = 0; j < H; ++j) o[j] = j < n ? _mm256_loadu_ps(states[g + j].o + d) : _mm256_setzero_ps();
      for (std::int64_t row = 0; row < count; ++row) {
        const __m256 vv = load8(v, element, row * stride + d);
        for (int j = 0; j < H; ++j)
          if (j < n) o[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + (g + j) * count + row), vv, o[j]);
      }
      for (int j = 0; j < H; ++j)
        if (j < n) _mm256_storeu_ps(states[g + j].o + d, o[j]);
    }
  }
}

}  // namespace

const KernelSet* avx2_kernels() {
  // The int expansions are cheap next to the products they feed: the portable ones serve.
  static const KernelSet set{"avx2",
                             float_dots<float>,
                             float_dots<std::uint16_t>,
                             float_dots<Bf16>,
                             dots_q8,
                             dots_q4,
                             quantize_row,
                             expand<std::uint16_t>,
                             expand<Bf16>,
                             portable_kernels().expand_q8,
                             portable_kernels().expand_q4,
                             attend,
                             // Measured as the AVX-512 set's (docs/benchmarks.md): sgemm from 32
                             // tokens (f32) and 128 (expanded formats).
                             32,
                             128};
  return &set;
}

}  // namespace banyan::cpu
