#pragma once
// Launchers of the CUDA backend's kernels: row_kernels.cu, kv_kernels.cu, weight_kernels.cu, logit_kernels.cu. Plain
// declarations over raw device pointers, so the backend (C++20, host compiler) and the kernels
// (C++17, nvcc) share nothing else. Every launcher only enqueues on `stream`.
#include <cstddef>
#include <cstdint>
#include <cuda_runtime_api.h>

#include "model/weight_layout.hpp"

// Members both sides call.
#ifdef __CUDACC__
#define BANYAN_HOST_DEVICE __host__ __device__
#else
#define BANYAN_HOST_DEVICE
#endif

namespace banyan::gpu {

// A weight on the device, in weight_format.hpp's layout: row-major f32/f16 values, or for
// q8/q4 all rows' quants and then, `quant_bytes` in, all rows' f16 scales.
struct WeightView {
  const void* data = nullptr;
  WeightFormat format = WeightFormat::f32;
  std::int64_t rows = 0, cols = 0;
  std::size_t quant_bytes = 0;
};

// A ForwardBatch's per-token fields on the device (forward_batch.hpp says what each means).
struct BatchView {
  const std::int32_t* tokens = nullptr;
  const std::int32_t* positions = nullptr;
  const std::int32_t* slots = nullptr;
  const std::int32_t* cache_rows = nullptr;
  const std::int32_t* visible = nullptr;
  const std::uint64_t* tree_masks = nullptr;
  int size = 0;
  // A paged KV cache: token i's block table starts at blocks + block_begin[i]. Null in the
  // fixed layout, where token i's table is its slot (slots + i) in blocks of `capacity` rows.
  const std::int32_t* blocks = nullptr;
  const std::int32_t* block_begin = nullptr;
};

// The KV cache's element type.
enum class KvElement : std::uint8_t { f32, f16, bf16 };

// Keys and values: per layer, `rows` cache rows of kv_heads * head_dim elements, in blocks of
// block_rows (model/kv_layout.hpp; the fixed layout's blocks are its slots).
struct KvView {
  void* keys = nullptr;
  void* values = nullptr;
  int layers = 0;
  std::int64_t rows = 0;
  int block_rows = 0, kv_heads = 0, head_dim = 0;
  KvElement element = KvElement::f32;
  BANYAN_HOST_DEVICE std::int64_t row() const { return std::int64_t(kv_heads) * head_dim; }
};

// The attention kernel keeps a head's values in registers, 32 lanes x up to 8 each.
inline constexpr int kMaxHeadDim = 256;
// Up to this many tokens, f16/int8/int4 weights are multiplied as stored, with f32 inputs
// (small_batch_gemv); beyond it by cuBLAS on tensor cores, int8/int4 first expanded to f16.
inline constexpr int kGemvMaxTokens = 8;

// out[i] = table[batch.tokens[i]] as f32.
void embed(const WeightView& table, const BatchView& batch, float* out, cudaStream_t stream);
// out = x / rms(x) * gamma, row by row.
void rms_norm(const float* x, const float* gamma, float eps, int rows, int cols, float* out, cudaStream_t stream);
// Rotate-half rotary embedding of q and k, in place, at batch.positions; inv_freq [head_dim / 2]
// on the device, formed on the host exactly as the CPU backend forms it.
void rope(float* q, int q_cols, float* k, int k_cols, const BatchView& batch, int head_dim, const float* inv_freq,
          cudaStream_t stream);
// Stores k and v (rows [batch.size, kv.row()]) at batch.cache_rows of `layer` (rows of each
// token's sequence, placed by its block table).
void store_kv(const float* k, const float* v, const BatchView& batch, const KvView& kv, int layer, cudaStream_t stream);
// Each query row attends to the rows of its slot that batch.visible / batch.tree_masks allow.
void attention(const float* q, int heads, const BatchView& batch, const KvView& kv, int layer, float* out,
               cudaStream_t stream);
// For every layer, keys and values: cache row `to` = cache row `from`, for each (from, to) pair
// in order.
void copy_kv_rows(const KvView& kv, const std::int32_t* from_to, int moves, cudaStream_t stream);
// gate = silu(gate) * up
void silu_mul(float* gate, const float* up, std::int64_t n, cudaStream_t stream);
// x += y
void add(float* x, const float* y, std::int64_t n, cudaStream_t stream);
// out[j] = x[rows[j]]
void gather_rows(const float* x, std::int64_t cols, const std::int32_t* rows, int n, float* out, cudaStream_t stream);
// Each row of `logits` [rows, vocab] summarised as model/logit_summary.hpp lays it out, in `out`
// [rows, 2k + 1]; 1 <= k <= vocab.
// `temperatures` (device memory, one per row, or null): a row's temperature > 0 has its weight at
// it formed too.
void summarise_logits(const float* logits, int rows, int vocab, int k, const float* temperatures, float* out,
                      cudaStream_t stream);
// f32 -> f16, or bf16 when `brain` (as raw 16-bit values), for cuBLAS's 16-bit products.
void to_half(const float* x, std::int64_t n, std::uint16_t* out, bool brain, cudaStream_t stream);
// A q8/q4 weight expanded to row-major f16.
void dequantize(const WeightView& w, std::uint16_t* out, cudaStream_t stream);
// out [tokens, w.rows] = x [tokens, w.cols] · wᵀ for an f16/bf16/q8/q4 weight with whole groups of
// 32 columns, tokens <= kGemvMaxTokens.
void small_batch_gemv(const WeightView& w, const float* x, int tokens, float* out, cudaStream_t stream);

}  // namespace banyan::gpu
