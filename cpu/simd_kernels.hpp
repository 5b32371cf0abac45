#pragma once
// The inner loops of the CPU backend, one set per instruction set (portable, AVX2+FMA+F16C,
// AVX-512 with VNNI), chosen once at start-up for the CPU the process runs on.
//
// Quantized dot products work on activations quantized per group of 32 to int8:
//   x[i] ~ qa[i] * sa[g]; for q4 weights also ca[g] = 8 * sa[g] * sum(qa in g), which removes the
//   nibbles' +8 offset: dot = sum_g sw[g] * (sa[g] * sum(nib * qa) - ca[g]).
// For q4 a kernel set may order qa its own way (the AVX-512 set interleaves four groups so the
// nibbles need no shuffling): quantize_row(..., for_q4 = true) output is only for that set's
// dot_q4. With for_q4 = false every set writes the same plain order.
#include <cstdint>

#include "model/dtype.hpp"

namespace banyan::cpu {

// A bfloat16 weight, the upper half of an f32: a type of its own so that kernels overload on it
// (f16 weights are plain std::uint16_t).
struct Bf16 {
  std::uint16_t bits;
  float value() const { return bf16_to_f32(bits); }
};

// Activation rows one dot kernel call handles: quantized kernels up to kMaxDotRows, float ones
// (which also read several weight rows at once, kDotWeightRows) up to kMaxFloatDotRows.
constexpr int kMaxDotRows = 4;
constexpr int kMaxFloatDotRows = 6;
constexpr int kDotWeightRows = 4;

// A softmax accumulated over blocks of rows (online softmax): after every block,
// o / l = softmax(scores so far) · values so far.
struct AttentionState {
  float m;   // largest score so far
  float l;   // sum of exp(score - m)
  float* o;  // [head_dim] sum of exp(score - m) * value
};

struct KernelSet {
  const char* name;
  // Dot products of n weight rows (1 <= n <= kDotWeightRows, row r at w + r * w_stride) with m
  // activation rows (1 <= m <= kMaxFloatDotRows, row t at x + t * stride), reading each weight
  // once: out[r * m + t] = w_r . x_t.
  void (*dot_f32)(const float* w, std::int64_t w_stride, int n, const float* x, std::int64_t stride, std::int64_t k,
                  int m, float* out);
  void (*dot_f16)(const std::uint16_t* w, std::int64_t w_stride, int n, const float* x, std::int64_t stride,
                  std::int64_t k, int m, float* out);
  void (*dot_bf16)(const Bf16* w, std::int64_t w_stride, int n, const float* x, std::int64_t stride, std::int64_t k,
                   int m, float* out);
  // Dot products of one weight row with m activation rows (1 <= m <= kMaxDotRows), reading the
  // weights once: out[t] = w . x_t. Activation row t lies at qa + t * k, and sa, ca + t * k / 32.
  void (*dot_q8)(const std::int8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa,
                 const float* ca, std::int64_t k, int m, float* out);
  void (*dot_q4)(const std::uint8_t* w, const std::uint16_t* sw, const std::int8_t* qa, const float* sa,
                 const float* ca, std::int64_t k, int m, float* out);
  // Quantizes one activation row (k a multiple of 32) for dot_q8, or for dot_q4 when for_q4.
  void (*quantize_row)(const float* x, std::int64_t k, std::int8_t* qa, float* sa, float* ca, bool for_q4);
  // Expands one weight row to f32 (the prefill path multiplies expanded blocks with sgemm).
  void (*expand_f16)(const std::uint16_t* w, std::int64_t k, float* out);
  void (*expand_bf16)(const Bf16* w, std::int64_t k, float* out);
  void (*expand_q8)(const std::int8_t* w, const std::uint16_t* sw, std::int64_t k, float* out);
  void (*expand_q4)(const std::uint8_t* w, const std::uint16_t* sw, std::int64_t k, float* out);
  // `heads` query heads (head h at q + h * head_dim) that share one key/value head, over `count`
  // key and value rows of `element` type (f32, f16 or bf16) that lie `stride` elements apart, folded into
  // states[h]. `scores` has room for heads * count floats. Taking a grouped-query group at once
  // lets its heads share each key and value row read.
  void (*attend)(const float* q, int heads, const void* k, const void* v, std::int64_t stride, std::int64_t count,
                 int head_dim, float scale, DType element, float* scores, AttentionState* states);
  // Tokens from which a product goes through sgemm (cpu/matmul.hpp) rather than the dots above:
  // for f32 weights, and for weights sgemm needs expanded first (f16, bf16, int8, int4).
  int sgemm_from_f32;
  int sgemm_from_expanded;
};

const KernelSet& portable_kernels();
const KernelSet* avx2_kernels();    // nullptr when not compiled in
const KernelSet* avx512_kernels();  // nullptr when not compiled in

// The best set this CPU supports. BANYAN_KERNELS=portable|avx2|avx512 forces one (for tests).
const KernelSet& best_kernels();

}  // namespace banyan::cpu
