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

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // `partial` may still be read from a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : 0.0f;
  return warp_sum(v);
}

// Blocks of `threads` covering n items, capped (kernels loop over the rest).
inline unsigned blocks_for(std::int64_t n, int threads, std::int64_t cap = 65535) {
  const std::int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace banyan::gpu
