#pragma once
// Small device helpers shared by the kernels.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace banyan::gpu {

__device__ __forceinline__ float half_to_float(std::uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ std::uint16_t float_to_half(float f) { return __half_as_ushort(__float2half_rn(f)); }
__device__ __forceinline__ float bf16_to_float(std::uint16_t b) { return __uint_as_float(std::uint32_t(b) << 16); }
__device__ __forceinline__ std::uint16_t float_to_bf16(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }

__device__ __forceinline__ float shuffle_xor(float v, int offset) { return __shfl_xor_sync(0xffffffffu, v, offset); }

// `v` combined over the warp (`combine` associative and commutative; shuffle_xor found for T);
// every lane gets it.
template <typename T, typename Combine>
__device__ __forceinline__ T warp_reduce(T v, Combine combine) {
  for (int offset = 16; offset > 0; offset /= 2) v = combine(v, shuffle_xor(v, offset));
  return v;
}

// The same over the block (blockDim.x a multiple of 32, at most 1024), `identity` filling the
// lanes of absent warps.
template <typename T, typename Combine>
__device__ __forceinline__ T block_reduce(T v, T identity, Combine combine) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_reduce(v, combine);
  __syncthreads();  // `partial` may still be read from a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  return warp_reduce(lane < warps ? partial[lane] : identity, combine);
}

__device__ __forceinline__ float warp_sum(float v) {
  return warp_reduce(v, [](float a, float b) { return a + b; });
}

__device__ __forceinline__ float block_sum(float v) {
  return block_reduce(v, 0.0f, [](float a, float b) { return a + b; });
}

// Blocks of `threads` covering n items, capped (kernels loop over the rest).
inline unsigned blocks_for(std::int64_t n, int threads, std::int64_t cap = 65535) {
  const std::int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace banyan::gpu
