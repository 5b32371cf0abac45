// AVX-512 kernels (F, BW, VL, DQ, VNNI) with F16C. Compiled with those flags; only called when
// the CPU reports them (simd_dispatch.cpp).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>
#include <utility>

#include "cpu/count_dispatch.hpp"
#include "cpu/prefetch.hpp"
#include "cpu/simd_kernels.hpp"

namespace banyan::cpu {

namespace {

inline float f16(std::uint16_t h) { return _cvtsh_ss(h); }

// Sixteen weights as f32, from f32, f16 or bf16 storage; the masked forms read only the first lanes.
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const std::uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 widen_bf16(__m256i bits) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16)); }
inline __m512 load16(const Bf16* p) { return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 load16(const float* p, __mmask16 lanes) { return _mm512_maskz_loadu_ps(lanes, p); }
inline __m512 load16(const std::uint16_t* p, __mmask16 lanes) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, p)); }
inline __m512 load16(const Bf16* p, __mmask16 lanes) { return widen_bf16(_mm256_maskz_loadu_epi16(lanes, p)); }

// R weight rows against M activation rows: every activation vector loaded meets R weight
// vectors and every weight vector M activations. One row at a time loaded an activation vector
// per multiply-add, which bounded several tokens (a verified tree, a batch) well below the
// memory bandwidth (measured, one thread, weights from DRAM, 4 tokens: 17 -> 36 GB/s). U
// accumulators per pair keep at least four multiply-add chains going when R * M is small.
template <int R, int M, typename W>
void dot_rows(const W* w, std::int64_t w_stride, const float* x, std::int64_t stride, std::int64_t k, float* out) {
  constexpr int U = R * M >= 4 ? 1 : 4 / (R * M);
  __m512 a[R][M][U];
  for (auto& row : a)
    for (auto& pair : row)
      for (auto& v : pair) v = _mm512_setzero_ps();
  auto step = [&](std::int64_t i, int u) {
    __m512 wv[R];
    for (int r = 0; r < R; ++r) {
      if (sizeof(W) == 4 || i % 32 == 0) {  // once per cache line
        // Several rows are read together, so 4 KiB ahead would mostly land in rows of this
        // group; the same columns of the next group are what comes next. That is a whole group
        // ahead (tens of KiB), so into L2: prefetched into L1 it evicted itself before use, and
        // the multiply-adds of several tokens then waited for memory instead of overlapping it
        // (measured, 2 threads, llama-160m's layers, f32: 5 tokens 1.9x -> 1.0x the time of one).
        if constexpr (R == 1)
          prefetch_ahead(w + i);
        else
          _mm_prefetch(reinterpret_cast<const char*>(w + (r + R) * w_stride + i), _MM_HINT_T1);
      }
      wv[r] = load16(w + r * w_stride + i);
    }
    for (int t = 0; t < M; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + t * stride + i);
      for (int r = 0; r < R; ++r) a[r][t][u] = _mm512_fmadd_ps(wv[r], xv, a[r][t][u]);
    }
  };
  std::int64_t i = 0;
  for (; i + 16 * U <= k; i += 16 * U)
    for (int u = 0; u < U; ++u) step(i + 16 * u, u);
  for (; i + 16 <= k; i += 16) step(i, 0);
  if (i < k) {
    const __mmask16 lanes = __mmask16((1u << (k - i)) - 1);
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load16(w + r * w_stride + i, lanes);
    for (int t = 0; t < M; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(lanes, x + t * stride + i);
      for (int r = 0; r < R; ++r) a[r][t][0] = _mm512_fmadd_ps(wv[r], xv, a[r][t][0]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < M; ++t) {
      __m512 sum = a[r][t][0];
      for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, a[r][t][u]);
      out[r * M + t] = _mm512_reduce_add_ps(sum);
    }
}

// The lane patterns that spread the scales of 16 groups over the int32 lanes of a dpbusd
// result: 2 groups of 8 lanes (q8), or 4 groups of 4 lanes (q4).
inline __m512i spread_index(int groups_per_vector, int first) {
  alignas(64) std::int32_t idx[16];
  for (int i = 0; i < 16; ++i) idx[i] = first + i / (16 / groups_per_vector);
  return _mm512_load_si512(idx);
}

// Activation row t of the quantized kernels: qa + t * k, sa and ca + t * (k / 32).
// For `n` (up to 16) groups from g and every row t: scales[t] = weight scale x activation scale
// per group, and corr[t] += weight scale x ca.
template <int M>
inline void group_scales(const std::uint16_t* sw, const float* sa, const float* ca, std::int64_t groups,
                         std::int64_t g, std::int64_t n, __m512* scales, __m512* corr) {
  const __mmask16 m = n == 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
  const __m512 swf = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sw + g));
  for (int t = 0; t < M; ++t) {
    scales[t] = _mm512_mul_ps(swf, _mm512_maskz_loadu_ps(m, sa + t * groups + g));
    corr[t] = _mm512_fmadd_ps(swf, _mm512_maskz_loadu_ps(m, ca + t * groups + g), corr[t]);
  }
}
template <int M>
void dot_q8(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
            std::int64_t k, float* out) {
  static const __m512i pair[8] = {spread_index(2, 0), spread_index(2, 2), spread_index(2, 4), spread_index(2, 6),
                                  spread_index(2, 8), spread_index(2, 10), spread_index(2, 12), spread_index(2, 14)};
  const std::int64_t groups = k / 32;
  __m512 acc[M][2], corr[M], scales[M];
  for (int t = 0; t < M; ++t) acc[t][0] = acc[t][1] = corr[t] = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512(), bias = _mm512_set1_epi8(char(0x80));
  // dpbusd wants one unsigned operand: w + 128 (the sign bit flipped). The extra
  // 128 * sa * sum(qa) per group is 16 * ca, taken off once at the end.
  auto weights = [&](std::int64_t g) {
    prefetch_ahead(w + g * 32);
    return _mm512_xor_si512(_mm512_loadu_si512(w + g * 32), bias);
  };
  auto pair_dot = [&](__m512i wv, int t, std::int64_t g) {
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, wv, _mm512_loadu_si512(qa + t * k + g * 32)));
  };
  std::int64_t g = 0;
  for (; g + 16 <= groups; g += 16) {
    group_scales<M>(sw, sa, ca, groups, g, 16, scales, corr);
    for (int p = 0; p < 8; p += 2) {
      const __m512i w0 = weights(g + 2 * p), w1 = weights(g + 2 * p + 2);
      for (int t = 0; t < M; ++t) {
        acc[t][0] = _mm512_fmadd_ps(pair_dot(w0, t, g + 2 * p), _mm512_permutexvar_ps(pair[p], scales[t]), acc[t][0]);
        acc[t][1] = _mm512_fmadd_ps(pair_dot(w1, t, g + 2 * p + 2), _mm512_permutexvar_ps(pair[p + 1], scales[t]), acc[t][1]);
      }
    }
  }
  if (const std::int64_t rest = groups - g; rest > 0) {
    group_scales<M>(sw, sa, ca, groups, g, rest, scales, corr);
    for (int p = 0; 2 * p + 1 < rest; ++p) {
      const __m512i wv = weights(g + 2 * p);
      for (int t = 0; t < M; ++t)
        acc[t][0] = _mm512_fmadd_ps(pair_dot(wv, t, g + 2 * p), _mm512_permutexvar_ps(pair[p], scales[t]), acc[t][0]);
    }
    if (rest % 2) {  // one group left: its 8 lanes of a half-filled pair
      const std::int64_t last = g + rest - 1;
      const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + last * 32)),
                                          _mm256_set1_epi8(char(0x80)));
      for (int t = 0; t < M; ++t) {
        const __m256i d = _mm256_dpbusd_epi32(
            _mm256_setzero_si256(), wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + t * k + last * 32)));
        acc[t][1] = _mm512_fmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(d)),
                                    _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(f16(sw[last]) * sa[t * groups + last])),
                                    acc[t][1]);
      }
    }
  }
  for (int t = 0; t < M; ++t)
    out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1])) - 16.0f * _mm512_reduce_add_ps(corr[t]);
}

// q4 activations: every block of 4 whole groups is stored as [a0..15 of groups 0-3] then
// [a16..31 of groups 0-3], matching the low and high nibbles of 64 weight bytes. A tail of
// fewer than 4 groups keeps the plain order.
template <int M>
void dot_q4(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
            std::int64_t k, float* out) {
  static const __m512i quad[4] = {spread_index(4, 0), spread_index(4, 4), spread_index(4, 8), spread_index(4, 12)};
  const std::int64_t groups = k / 32;
  __m512 acc[M][2], corr[M], scales[M];
  for (int t = 0; t < M; ++t) acc[t][0] = acc[t][1] = corr[t] = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512(), nibble = _mm512_set1_epi8(0x0f);
  struct Nibbles {
    __m512i lo, hi;
  };
  auto weights = [&](std::int64_t g) {
    prefetch_ahead(w + g * 16);
    __m512i raw = _mm512_loadu_si512(w + g * 16);
    // Kept in a register: else the compiler folds the load into both nibble operations, and
    // the kernel, bound by its loads, reads each weight line twice (1.17x the time in L1).
    asm("" : "+v"(raw));
    return Nibbles{_mm512_and_si512(raw, nibble), _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble)};
  };
  // Four groups: the low nibbles meet activations 0..15 of each, the high ones 16..31.
  auto quad_dot = [&](const Nibbles& n, int t, std::int64_t g) {
    const std::int8_t* a = qa + t * k + g * 32;
    const __m512i d = _mm512_dpbusd_epi32(zero, n.lo, _mm512_loadu_si512(a));
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(d, n.hi, _mm512_loadu_si512(a + 64)));
  };
  std::int64_t g = 0;
  for (; g + 16 <= groups; g += 16) {
    group_scales<M>(sw, sa, ca, groups, g, 16, scales, corr);
    for (int q = 0; q < 4; q += 2) {
      const Nibbles n0 = weights(g + 4 * q), n1 = weights(g + 4 * q + 4);
      for (int t = 0; t < M; ++t) {
        acc[t][0] = _mm512_fmadd_ps(quad_dot(n0, t, g + 4 * q), _mm512_permutexvar_ps(quad[q], scales[t]), acc[t][0]);
        acc[t][1] = _mm512_fmadd_ps(quad_dot(n1, t, g + 4 * q + 4), _mm512_permutexvar_ps(quad[q + 1], scales[t]), acc[t][1]);
      }
    }
  }
  if (const std::int64_t rest = groups - g; rest > 0) {
    group_scales<M>(sw, sa, ca, groups, g, rest, scales, corr);
    for (int q = 0; 4 * q + 4 <= rest; ++q) {
      const Nibbles n = weights(g + 4 * q);
      for (int t = 0; t < M; ++t)
        acc[t][0] = _mm512_fmadd_ps(quad_dot(n, t, g + 4 * q), _mm512_permutexvar_ps(quad[q], scales[t]), acc[t][0]);
    }
  }
  for (int t = 0; t < M; ++t) {
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1])) - _mm512_reduce_add_ps(corr[t]);
    for (std::int64_t h = groups / 4 * 4; h < groups; ++h) {  // fewer than 4 groups left, in plain order
      std::int32_t d = 0;
      for (int j = 0; j < 16; ++j) {
        const std::uint8_t b = w[h * 16 + j];
        d += std::int32_t(b & 0x0f) * qa[t * k + h * 32 + j] + std::int32_t(b >> 4) * qa[t * k + h * 32 + j + 16];
      }
      s += f16(sw[h]) * sa[t * groups + h] * float(d);
    }
    out[t] = s;
  }
}

// The kernels above for run-time counts (cpu/count_dispatch.hpp: 1..4).
static_assert(kMaxDotRows == 4);

// dot_rows for run-time counts: n weight rows (1..4), m activation rows (1..6).
template <typename W>
void float_dots(const W* w, std::int64_t w_stride, int n, const float* x, std::int64_t stride, std::int64_t k, int m,
                float* out) {
  static_assert(kDotWeightRows == 4 && kMaxFloatDotRows == 6);
  auto with_m = [&](auto weight_rows) {
    constexpr int R = decltype(weight_rows)::value;
    switch (m) {
      case 1: return dot_rows<R, 1>(w, w_stride, x, stride, k, out);
      case 2: return dot_rows<R, 2>(w, w_stride, x, stride, k, out);
      case 3: return dot_rows<R, 3>(w, w_stride, x, stride, k, out);
      case 4: return dot_rows<R, 4>(w, w_stride, x, stride, k, out);
      case 5: return dot_rows<R, 5>(w, w_stride, x, stride, k, out);
      default: return dot_rows<R, 6>(w, w_stride, x, stride, k, out);
    }
  };
  with_count(n, with_m);
}
void dots_q8(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
             std::int64_t k, int m, float* out) {
  with_count(m, [&](auto rows) { dot_q8<rows>(w, sw, qa, sa, ca, k, out); });
}
void dots_q4(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa, const float* ca,
             std::int64_t k, int m, float* out) {
  with_count(m, [&](auto rows) { dot_q4<rows>(w, sw, qa, sa, ca, k, out); });
}

void quantize_row(const float* x, std::int64_t k, std::int8_t* qa, float* sa, float* ca, bool for_q4) {
  const __m512 sign_off = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const std::int64_t groups = k / 32, interleaved = for_q4 ? groups / 4 * 4 : 0;
  for (std::int64_t g = 0; g < groups; ++g) {
    const __m512 v0 = _mm512_loadu_ps(x + g * 32), v1 = _mm512_loadu_ps(x + g * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, sign_off), _mm512_and_ps(v1, sign_off)));
    const float scale = amax / 127.0f;
    const __m512 inv = _mm512_set1_ps(scale > 0 ? 1.0f / scale : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
    std::int8_t* first = qa + g * 32;
    std::int8_t* second = qa + g * 32 + 16;
    if (g < interleaved) {
      const std::int64_t block = g / 4 * 128, j = g % 4;
      first = qa + block + j * 16;
      second = qa + block + 64 + j * 16;
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(first), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(second), _mm512_cvtsepi32_epi8(q1));
    sa[g] = scale;
    ca[g] = 8.0f * scale * float(_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1)));
  }
}

template <typename W>
void expand(const W* w, std::int64_t k, float* out) {
  std::int64_t i = 0;
  for (; i + 16 <= k; i += 16) _mm512_storeu_ps(out + i, load16(w + i));
  if (i < k) {
    const __mmask16 lanes = __mmask16((1u << (k - i)) - 1);
    _mm512_mask_storeu_ps(out + i, lanes, load16(w + i, lanes));
  }
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

// exp(x) for x <= 0: 2^(x log2 e) split into 2^n (vscalefps) and 2^f, |f| <= 1/2, by a
// degree-6 Taylor polynomial of e^(f ln 2) (relative error under 2e-7).
inline __m512 exp_ps(__m512 x) {
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_mul_ps(_mm512_sub_ps(t, n), _mm512_set1_ps(0.69314718f));
  __m512 p = _mm512_set1_ps(1.0f / 720);
  for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// 16 keys or values of a row, as f32.
inline __m512 load16(const void* rows, DType element, std::int64_t at) {
  switch (element) {
    case DType::f16: return load16(static_cast<const std::uint16_t*>(rows) + at);
    case DType::bf16: return load16(static_cast<const Bf16*>(rows) + at);
    default: return load16(static_cast<const float*>(rows) + at);
  }
}

// Sixteen vectors summed across their lanes at once: lane i of the result is the sum of v[i].
// A transposing tree of 15 adds where sixteen separate reductions took four times the work.
inline __m512 sum_lanes16(const __m512 (&v)[16]) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)  // in each 128-bit lane: two partial sums of rows 2i and 2i+1
    a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // in each 128-bit lane: one partial sum of rows 4i..4i+3
    const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
    b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  for (int i = 0; i < 2; ++i)  // 128-bit lanes: rows 8i..8i+3 twice, then 8i+4..8i+7 twice
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
}

// Scores of one head against 16 key rows from `first` (rows past `rows` count zero).
template <int C>
inline __m512 block_scores(const float* q, const void* k, std::int64_t stride, std::int64_t first, int rows, DType element) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) {
    acc[i] = _mm512_setzero_ps();
    if (i < rows)
      for (int c = 0; c < C; ++c)
        acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(q + c * 16), load16(k, element, (first + i) * stride + c * 16), acc[i]);
  }
  return sum_lanes16(acc);
}

// Folds one head's block of scores into its state: the running maximum, the sums rescaled to
// it, and the scores turned into exp(score - max) for the value pass.
void fold_scores(float* s, std::int64_t count, int head_dim, AttentionState& st) {
  __m512 mv = _mm512_set1_ps(st.m);
  std::int64_t r = 0;
  for (; r + 16 <= count; r += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(s + r));
  const __mmask16 tail = __mmask16((1u << (count - r)) - 1);
  mv = _mm512_mask_max_ps(mv, tail, mv, _mm512_maskz_loadu_ps(tail, s + r));
  const float m = _mm512_reduce_max_ps(mv);
  const float rescale = std::exp(st.m - m);  // 0 for the first block (st.m = -inf)
  mv = _mm512_set1_ps(m);
  __m512 lsum = _mm512_setzero_ps();
  for (r = 0; r + 16 <= count; r += 16) {
    const __m512 p = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + r), mv));
    _mm512_storeu_ps(s + r, p);
    lsum = _mm512_add_ps(lsum, p);
  }
  if (r < count) {
    const __m512 p = _mm512_maskz_mov_ps(tail, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + r), mv)));
    _mm512_mask_storeu_ps(s + r, tail, p);
    lsum = _mm512_add_ps(lsum, p);
  }
  for (int d = 0; d < head_dim; d += 16)
    _mm512_storeu_ps(st.o + d, _mm512_mul_ps(_mm512_loadu_ps(st.o + d), _mm512_set1_ps(rescale)));
  st.l = st.l * rescale + _mm512_reduce_add_ps(lsum);
  st.m = m;
}

// attend for head_dim = 16 * C: first the scores, each block of 16 key rows meeting every head
// while it is in L1; then each head's softmax; then the value rows, each loaded once for as many
// heads as 16 accumulators hold.
template <int C>
void attend_heads(const float* q, int heads, const void* k, const void* v, std::int64_t stride, std::int64_t count,
                  float scale, DType element, float* scores, AttentionState* states) {
  constexpr int head_dim = 16 * C, H = C >= 16 ? 1 : 16 / C;
  const __m512 scale_v = _mm512_set1_ps(scale);
  for (std::int64_t r = 0; r < count; r += 16) {
    const int rows = int(std::min<std::int64_t>(16, count - r));
    for (int h = 0; h < heads; ++h)
      _mm512_mask_storeu_ps(scores + h * count + r, __mmask16((1u << rows) - 1),
                            _mm512_mul_ps(block_scores<C>(q + h * head_dim, k, stride, r, rows, element), scale_v));
  }
  for (int h = 0; h < heads; ++h) fold_scores(scores + h * count, count, head_dim, states[h]);
  for (int g = 0; g < heads; g += H) {
    const int n = std::min(H, heads - g);
    __m512 o[H][C];
    for (int j = 0; j < H; ++j)
      if (j < n)
        for (int c = 0; c < C; ++c) o[j][c] = _mm512_loadu_ps(states[g + j].o + c * 16);
    for (std::int64_t row = 0; row < count; ++row)
      for (int c = 0; c < C; ++c) {
        const __m512 vv = load16(v, element, row * stride + c * 16);
        for (int j = 0; j < H; ++j)
          if (j < n) o[j][c] = _mm512_fmadd_ps(_mm512_set1_ps(scores[(g + j) * count + row]), vv, o[j][c]);
      }
    for (int j = 0; j < H; ++j)
      if (j < n)
        for (int c = 0; c < C; ++c) _mm512_storeu_ps(states[g + j].o + c * 16, o[j][c]);
  }
}

template <int... C>
constexpr auto attend_table(std::integer_sequence<int, C...>) {
  return std::array{&attend_heads<C + 1>...};
}

void attend(const float* q, int heads, const void* k, const void* v, std::int64_t stride, std::int64_t count,
            int head_dim, float scale, DType element, float* scores, AttentionState* states) {
  static constexpr auto by_chunks = attend_table(std::make_integer_sequence<int, 16>{});  // head_dim 16..256
  if (head_dim % 16 != 0 || head_dim > 256)
    return portable_kernels().attend(q, heads, k, v, stride, count, head_dim, scale, element, scores, states);
  by_chunks[std::size_t(head_dim / 16 - 1)](q, heads, k, v, stride, count, scale, element, scores, states);
}

}  // namespace

const KernelSet* avx512_kernels() {
  static const KernelSet set{"avx512",     float_dots<float>, float_dots<std::uint16_t>, float_dots<Bf16>,
                             dots_q8,      dots_q4,           quantize_row,             expand<std::uint16_t>,
                             expand<Bf16>, expand_q8,         expand_q4,                attend,
                             // Measured, 2 threads, llama-160m's layers (docs/benchmarks.md): for
                             // f32 the dots beat sgemm at 64 tokens and lose at 128; for the
                             // expanded formats they keep up to 256.
                             96,           256};
  return &set;
}

}  // namespace banyan::cpu
