// The KV cache's kernels: storing a batch's keys and values, attention over a sequence's rows
// (found through its block table) with the token-tree mask, and compacting accepted tree rows
// into place.
#include <cmath>

#include "gpu/cuda_check.hpp"
#include "gpu/device_math.cuh"
#include "gpu/kernels.hpp"

namespace banyan::gpu {

namespace {

constexpr int kThreads = 256;
constexpr int kAttentionWarps = 8;
constexpr int kAttentionRows = 4;  // rows a warp reads at a time
constexpr int kLaneValues = kMaxHeadDim / 32;

// Elements as stored: f32, f16 (raw 16 bits) or bf16.
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const std::uint16_t* p) { return half_to_float(*p); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(std::uint16_t* p, float v) { *p = float_to_half(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Calls launch(T{}) with the cache's element type T.
template <typename Launch>
void with_element(const KvView& kv, Launch&& launch) {
  switch (kv.element) {
    case KvElement::f16: return launch(std::uint16_t{});
    case KvElement::bf16: return launch(__nv_bfloat16{});
    default: return launch(float{});
  }
}

__device__ __forceinline__ std::int64_t row_offset(const KvView& kv, int layer, std::int64_t cache_row) {
  return (std::int64_t(layer) * kv.rows + cache_row) * kv.row();
}

// The cache row of row r of token i's sequence.
__device__ __forceinline__ std::int64_t cache_row(const KvView& kv, const BatchView& batch, int i, int r) {
  const std::int32_t* table = batch.blocks ? batch.blocks + batch.block_begin[i] : batch.slots + i;
  return std::int64_t(table[r / kv.block_rows]) * kv.block_rows + r % kv.block_rows;
}

template <typename T>
__global__ void store_kv_kernel(const float* k, const float* v, BatchView batch, KvView kv, int layer) {
  const int i = blockIdx.x;
  const std::int64_t width = kv.row(), at = row_offset(kv, layer, cache_row(kv, batch, i, batch.cache_rows[i]));
  for (std::int64_t e = threadIdx.x; e < width; e += blockDim.x) {
    store(static_cast<T*>(kv.keys) + at + e, k[i * width + e]);
    store(static_cast<T*>(kv.values) + at + e, v[i * width + e]);
  }
}

// Row of the k-th set bit of `mask`.
__device__ __forceinline__ int nth_set_bit(std::uint64_t mask, int k) {
  for (int c = 0; c < k; ++c) mask &= mask - 1;
  return __ffsll(static_cast<long long>(mask)) - 1;
}

// One block per (head, query token). Each warp takes kAttentionRows rows the token may see at a
// time — the visible prefix, then its ancestors by the tree mask — and the next kAttentionRows
// after every other warp's; it keeps an online softmax (running max, sum and weighted values; lane l
// holds dimensions l, l + 32, ...), and the warps' states are merged at the end. A warp's rows are
// independent loads in flight together: taking one row at a time, a warp waited out a load's
// latency for every row of a long context.
template <typename T>
__global__ void attention_kernel(const float* q, BatchView batch, KvView kv, int layer, int heads, float scale,
                                 float* out) {
  const int head = blockIdx.x, i = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = heads / kv.kv_heads, visible = batch.visible[i];
  const std::uint64_t mask = batch.tree_masks[i];
  const int rows = visible + __popcll(static_cast<unsigned long long>(mask));
  const std::int64_t q_cols = std::int64_t(heads) * kv.head_dim;
  const std::int64_t base = row_offset(kv, layer, 0) + std::int64_t(head / group) * kv.head_dim;
  const T* keys = static_cast<const T*>(kv.keys) + base;
  const T* values = static_cast<const T*>(kv.values) + base;

  float qv[kLaneValues], acc[kLaneValues];
#pragma unroll
  for (int j = 0; j < kLaneValues; ++j) {
    qv[j] = lane + 32 * j < kv.head_dim ? q[i * q_cols + std::int64_t(head) * kv.head_dim + lane + 32 * j] : 0.0f;
    acc[j] = 0.0f;
  }
  float max = -INFINITY, sum = 0.0f;
  for (int first = warp * kAttentionRows; first < rows; first += kAttentionWarps * kAttentionRows) {
    std::int64_t at[kAttentionRows];
    float s[kAttentionRows];
#pragma unroll
    for (int u = 0; u < kAttentionRows; ++u) {
      const int t = first + u;
      const int r = t < visible ? t : visible + nth_set_bit(mask, t - visible);
      at[u] = t < rows ? cache_row(kv, batch, i, r) * kv.row() + lane : -1;
      s[u] = 0.0f;
      if (at[u] < 0) continue;  // the same for the whole warp
#pragma unroll
      for (int j = 0; j < kLaneValues; ++j)
        if (lane + 32 * j < kv.head_dim) s[u] += qv[j] * load(keys + at[u] + 32 * j);
    }
    float new_max = max;
#pragma unroll
    for (int u = 0; u < kAttentionRows; ++u) {
      s[u] = at[u] >= 0 ? warp_sum(s[u]) * scale : -INFINITY;
      new_max = fmaxf(new_max, s[u]);
    }
    const float shrink = expf(max - new_max);  // the first row is always there: new_max is finite
    sum *= shrink;
#pragma unroll
    for (int j = 0; j < kLaneValues; ++j) acc[j] *= shrink;
#pragma unroll
    for (int u = 0; u < kAttentionRows; ++u) {
      if (at[u] < 0) continue;
      const float p = expf(s[u] - new_max);
      sum += p;
#pragma unroll
      for (int j = 0; j < kLaneValues; ++j)
        if (lane + 32 * j < kv.head_dim) acc[j] += p * load(values + at[u] + 32 * j);
    }
    max = new_max;
  }

  __shared__ float warp_max[kAttentionWarps], warp_sum_of[kAttentionWarps], warp_acc[kAttentionWarps][kMaxHeadDim];
  if (lane == 0) {
    warp_max[warp] = max;
    warp_sum_of[warp] = sum;
  }
#pragma unroll
  for (int j = 0; j < kLaneValues; ++j)
    if (lane + 32 * j < kv.head_dim) warp_acc[warp][lane + 32 * j] = acc[j];
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < kAttentionWarps; ++w) m = fmaxf(m, warp_max[w]);
  for (int d = threadIdx.x; d < kv.head_dim; d += blockDim.x) {
    float total = 0.0f, value = 0.0f;
    for (int w = 0; w < kAttentionWarps; ++w) {
      if (warp_sum_of[w] == 0.0f) continue;  // a warp that saw no row
      const float c = expf(warp_max[w] - m);
      total += warp_sum_of[w] * c;
      value += warp_acc[w][d] * c;
    }
    out[i * q_cols + std::int64_t(head) * kv.head_dim + d] = total > 0.0f ? value / total : 0.0f;
  }
}

// Each thread owns one element column of a row, for every move in order, so moves that read a
// row an earlier move wrote see it written (the CPU backend's order).
template <typename T>
__global__ void copy_kv_rows_kernel(KvView kv, const std::int32_t* from_to, int moves) {
  const int layer = blockIdx.y;
  T* data = static_cast<T*>(blockIdx.z == 0 ? kv.keys : kv.values);
  const std::int64_t width = kv.row();
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < width; e += std::int64_t(gridDim.x) * blockDim.x)
    for (int m = 0; m < moves; ++m)
      data[row_offset(kv, layer, from_to[2 * m + 1]) + e] = data[row_offset(kv, layer, from_to[2 * m]) + e];
}

}  // namespace

void store_kv(const float* k, const float* v, const BatchView& batch, const KvView& kv, int layer, cudaStream_t stream) {
  if (batch.size == 0) return;
  with_element(kv, [&](auto element) {
    store_kv_kernel<decltype(element)><<<batch.size, kThreads, 0, stream>>>(k, v, batch, kv, layer);
  });
  check_launch("store_kv");
}

void attention(const float* q, int heads, const BatchView& batch, const KvView& kv, int layer, float* out,
               cudaStream_t stream) {
  if (batch.size == 0) return;
  const dim3 grid(unsigned(heads), unsigned(batch.size));
  const float scale = 1.0f / std::sqrt(float(kv.head_dim));
  with_element(kv, [&](auto element) {
    attention_kernel<decltype(element)><<<grid, 32 * kAttentionWarps, 0, stream>>>(q, batch, kv, layer, heads, scale, out);
  });
  check_launch("attention");
}

void copy_kv_rows(const KvView& kv, const std::int32_t* from_to, int moves, cudaStream_t stream) {
  if (moves == 0) return;
  const dim3 grid(blocks_for(kv.row(), kThreads), unsigned(kv.layers), 2);
  with_element(kv, [&](auto element) {
    copy_kv_rows_kernel<decltype(element)><<<grid, kThreads, 0, stream>>>(kv, from_to, moves);
  });
  check_launch("copy_kv_rows");
}

}  // namespace banyan::gpu
