// Kernels that read stored f16 / bf16 / int8 / int4 weights (weight_format.hpp; quantized ones in groups
// of 32 with one f16 scale): products for a few tokens straight from the stored weights, and
// int8 / int4 expanded to f16 for cuBLAS when many tokens share a weight.
#include <utility>

#include "gpu/cuda_check.hpp"
#include "gpu/device_math.cuh"
#include "gpu/kernels.hpp"

namespace banyan::gpu {

namespace {

constexpr int kThreads = 256;
// Bytes one group of 32 weights takes in each stored format (scales apart).
__host__ __device__ constexpr int group_bytes(WeightFormat f) {
  return f == WeightFormat::f16 || f == WeightFormat::bf16 ? 2 * kQuantGroup
         : f == WeightFormat::q8                          ? kQuantGroup
                                                          : kQuantGroup / 2;
}

// The 32 stored values of group `g` (a row-major group index), before any scale.
template <WeightFormat F>
__device__ __forceinline__ void load_group(const std::uint8_t* quants, std::int64_t g, float (&w)[kQuantGroup]) {
  constexpr int kGroupBytesQ4 = group_bytes(WeightFormat::q4);
  const uint4* p = reinterpret_cast<const uint4*>(quants + g * group_bytes(F));
  if constexpr (F == WeightFormat::f16 || F == WeightFormat::bf16) {
#pragma unroll
    for (int part = 0; part < 4; ++part) {
      const uint4 v = p[part];
      const std::uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const auto bits = std::uint16_t(words[j / 2] >> (16 * (j % 2)));
        w[8 * part + j] = F == WeightFormat::f16 ? half_to_float(bits) : bf16_to_float(bits);
      }
    }
  } else if constexpr (F == WeightFormat::q4) {
    const uint4 packed = p[0];
    const std::uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
    for (int j = 0; j < kGroupBytesQ4; ++j) {
      const std::uint32_t b = (words[j / 4] >> (8 * (j % 4))) & 0xff;
      w[j] = float(int(b & 0x0f) - 8);
      w[j + kGroupBytesQ4] = float(int(b >> 4) - 8);
    }
  } else {
    const uint4 halves[2] = {p[0], p[1]};
#pragma unroll
    for (int j = 0; j < kQuantGroup; ++j) {
      const uint4& h = halves[j / 16];
      const std::uint32_t word = (j % 16) / 4 == 0 ? h.x : (j % 16) / 4 == 1 ? h.y : (j % 16) / 4 == 2 ? h.z : h.w;
      w[j] = float(static_cast<std::int8_t>((word >> (8 * (j % 4))) & 0xff));
    }
  }
}

// One warp per output row; its lanes take the row's groups in turn (neighbouring lanes read
// neighbouring groups, so a warp's loads are one contiguous run), each group's 32 weights are
// expanded in registers and dotted with every token's 32 inputs. f16/bf16 weights have no scales.
template <int Tokens, WeightFormat F>
__global__ void gemv_kernel(const std::uint8_t* quants, const std::uint16_t* scales, std::int64_t rows, std::int64_t cols,
                            const float* x, float* out) {
  const std::int64_t row = blockIdx.x * std::int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const std::int64_t groups = cols / kQuantGroup;
  float acc[Tokens] = {};
  for (std::int64_t g = lane; g < groups; g += 32) {
    float w[kQuantGroup];
    load_group<F>(quants, row * groups + g, w);
    const float scale = F == WeightFormat::f16 || F == WeightFormat::bf16 ? 1.0f : half_to_float(scales[row * groups + g]);
#pragma unroll
    for (int t = 0; t < Tokens; ++t) {
      const float4* in = reinterpret_cast<const float4*>(x + t * cols + g * kQuantGroup);
      float dot = 0.0f;
#pragma unroll
      for (int j = 0; j < kQuantGroup / 4; ++j) {
        const float4 v = in[j];
        dot += w[4 * j] * v.x + w[4 * j + 1] * v.y + w[4 * j + 2] * v.z + w[4 * j + 3] * v.w;
      }
      acc[t] += scale * dot;
    }
  }
#pragma unroll
  for (int t = 0; t < Tokens; ++t) {
    const float total = warp_sum(acc[t]);
    if (lane == 0) out[t * rows + row] = total;
  }
}

template <WeightFormat F>
__global__ void dequantize_kernel(const std::uint8_t* quants, const std::uint16_t* scales, std::int64_t groups,
                                  std::uint16_t* out) {
  for (std::int64_t g = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; g < groups; g += std::int64_t(gridDim.x) * blockDim.x) {
    float w[kQuantGroup];
    load_group<F>(quants, g, w);
    const float scale = half_to_float(scales[g]);
#pragma unroll
    for (int j = 0; j < kQuantGroup; ++j) out[g * kQuantGroup + j] = float_to_half(w[j] * scale);
  }
}

const std::uint8_t* quants_of(const WeightView& w) { return static_cast<const std::uint8_t*>(w.data); }
const std::uint16_t* scales_of(const WeightView& w) {
  return reinterpret_cast<const std::uint16_t*>(quants_of(w) + w.quant_bytes);
}

template <int Tokens>
void launch_gemv(const WeightView& w, const float* x, float* out, cudaStream_t stream) {
  const unsigned blocks = unsigned((w.rows + kThreads / 32 - 1) / (kThreads / 32));
  const auto* q = quants_of(w);
  const auto* s = scales_of(w);
  switch (w.format) {
    case WeightFormat::f16: gemv_kernel<Tokens, WeightFormat::f16><<<blocks, kThreads, 0, stream>>>(q, s, w.rows, w.cols, x, out); break;
    case WeightFormat::q8: gemv_kernel<Tokens, WeightFormat::q8><<<blocks, kThreads, 0, stream>>>(q, s, w.rows, w.cols, x, out); break;
    case WeightFormat::q4: gemv_kernel<Tokens, WeightFormat::q4><<<blocks, kThreads, 0, stream>>>(q, s, w.rows, w.cols, x, out); break;
    case WeightFormat::bf16: gemv_kernel<Tokens, WeightFormat::bf16><<<blocks, kThreads, 0, stream>>>(q, s, w.rows, w.cols, x, out); break;
    case WeightFormat::f32: break;  // cuBLAS's
  }
}

template <int... Tokens>
void launch_gemv_for(int tokens, const WeightView& w, const float* x, float* out, cudaStream_t stream,
                     std::integer_sequence<int, Tokens...>) {
  ((tokens == Tokens + 1 ? launch_gemv<Tokens + 1>(w, x, out, stream) : void()), ...);
}

}  // namespace

void small_batch_gemv(const WeightView& w, const float* x, int tokens, float* out, cudaStream_t stream) {
  if (tokens == 0) return;
  launch_gemv_for(tokens, w, x, out, stream, std::make_integer_sequence<int, kGemvMaxTokens>{});
  check_launch("small_batch_gemv");
}

void dequantize(const WeightView& w, std::uint16_t* out, cudaStream_t stream) {
  const std::int64_t groups = w.rows * w.cols / kQuantGroup;
  const unsigned blocks = blocks_for(groups, kThreads);
  if (w.format == WeightFormat::q4)
    dequantize_kernel<WeightFormat::q4><<<blocks, kThreads, 0, stream>>>(quants_of(w), scales_of(w), groups, out);
  else
    dequantize_kernel<WeightFormat::q8><<<blocks, kThreads, 0, stream>>>(quants_of(w), scales_of(w), groups, out);
  check_launch("dequantize");
}

}  // namespace banyan::gpu
