// Kernels that work row by row or element by element: embedding lookup, RMSNorm, rotary
// embedding, SiLU·mul, residual add, row gathers and f32 -> f16 / bf16.
#include "gpu/cuda_check.hpp"
#include "gpu/device_math.cuh"
#include "gpu/kernels.hpp"

namespace banyan::gpu {

namespace {

constexpr int kThreads = 256;

// Element (r, c) of a weight in any format, as f32 (weight_format.hpp's layouts).
__device__ float weight_at(const WeightView& w, std::int64_t r, std::int64_t c) {
  const std::int64_t i = r * w.cols + c;
  const auto* scales = reinterpret_cast<const std::uint16_t*>(static_cast<const char*>(w.data) + w.quant_bytes);
  switch (w.format) {
    case WeightFormat::f32: return static_cast<const float*>(w.data)[i];
    case WeightFormat::f16: return half_to_float(static_cast<const std::uint16_t*>(w.data)[i]);
    case WeightFormat::bf16: return bf16_to_float(static_cast<const std::uint16_t*>(w.data)[i]);
    case WeightFormat::q8: return float(static_cast<const std::int8_t*>(w.data)[i]) * half_to_float(scales[i / kQuantGroup]);
    case WeightFormat::q4: {
      const std::int64_t group = i / kQuantGroup;
      const int j = int(i % kQuantGroup);
      const std::uint8_t b = static_cast<const std::uint8_t*>(w.data)[group * (kQuantGroup / 2) + j % (kQuantGroup / 2)];
      const int nibble = j < kQuantGroup / 2 ? (b & 0x0f) : (b >> 4);
      return float(nibble - 8) * half_to_float(scales[group]);
    }
  }
  return 0.0f;
}

__global__ void embed_kernel(WeightView table, const std::int32_t* tokens, float* out) {
  const std::int64_t i = blockIdx.x;
  for (std::int64_t c = threadIdx.x; c < table.cols; c += blockDim.x)
    out[i * table.cols + c] = weight_at(table, tokens[i], c);
}

__global__ void rms_norm_kernel(const float* x, const float* gamma, float eps, int cols, float* out) {
  const float* row = x + std::int64_t(blockIdx.x) * cols;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) ss += row[c] * row[c];
  const float scale = rsqrtf(block_sum(ss) / float(cols) + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[std::int64_t(blockIdx.x) * cols + c] = row[c] * scale * gamma[c];
}

// One block per token; `inv_freq` [head_dim / 2] is formed on the host as the CPU backend forms it.
__global__ void rope_kernel(float* q, int q_cols, float* k, int k_cols, const std::int32_t* positions, int head_dim,
                            const float* inv_freq) {
  __shared__ float cos_j[kMaxHeadDim / 2], sin_j[kMaxHeadDim / 2];
  const int half = head_dim / 2;
  const float pos = float(positions[blockIdx.x]);
  for (int j = threadIdx.x; j < half; j += blockDim.x) {
    const float angle = pos * inv_freq[j];
    cos_j[j] = float(cos(double(angle)));
    sin_j[j] = float(sin(double(angle)));
  }
  __syncthreads();
  const int q_pairs = q_cols / 2, pairs = q_pairs + k_cols / 2;
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const bool is_q = p < q_pairs;
    const int pair = is_q ? p : p - q_pairs, head = pair / half, j = pair % half;
    float* v = (is_q ? q + std::int64_t(blockIdx.x) * q_cols : k + std::int64_t(blockIdx.x) * k_cols) + head * head_dim;
    const float x0 = v[j], x1 = v[j + half];
    v[j] = x0 * cos_j[j] - x1 * sin_j[j];
    v[j + half] = x1 * cos_j[j] + x0 * sin_j[j];
  }
}

__global__ void silu_mul_kernel(float* gate, const float* up, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

__global__ void add_kernel(float* x, const float* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void gather_rows_kernel(const float* x, std::int64_t cols, const std::int32_t* rows, float* out) {
  const float* from = x + rows[blockIdx.x] * cols;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[blockIdx.x * cols + c] = from[c];
}

__global__ void to_half_kernel(const float* x, std::int64_t n, std::uint16_t* out, bool brain) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    out[i] = brain ? float_to_bf16(x[i]) : float_to_half(x[i]);
}

}  // namespace

void embed(const WeightView& table, const BatchView& batch, float* out, cudaStream_t stream) {
  if (batch.size == 0) return;
  embed_kernel<<<batch.size, kThreads, 0, stream>>>(table, batch.tokens, out);
  check_launch("embed");
}

void rms_norm(const float* x, const float* gamma, float eps, int rows, int cols, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<rows, kThreads, 0, stream>>>(x, gamma, eps, cols, out);
  check_launch("rms_norm");
}

void rope(float* q, int q_cols, float* k, int k_cols, const BatchView& batch, int head_dim, const float* inv_freq,
          cudaStream_t stream) {
  if (batch.size == 0) return;
  rope_kernel<<<batch.size, kThreads, 0, stream>>>(q, q_cols, k, k_cols, batch.positions, head_dim, inv_freq);
  check_launch("rope");
}

void silu_mul(float* gate, const float* up, std::int64_t n, cudaStream_t stream) {
  silu_mul_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(gate, up, n);
  check_launch("silu_mul");
}

void add(float* x, const float* y, std::int64_t n, cudaStream_t stream) {
  add_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  check_launch("add");
}

void gather_rows(const float* x, std::int64_t cols, const std::int32_t* rows, int n, float* out, cudaStream_t stream) {
  if (n == 0) return;
  gather_rows_kernel<<<n, kThreads, 0, stream>>>(x, cols, rows, out);
  check_launch("gather_rows");
}

void to_half(const float* x, std::int64_t n, std::uint16_t* out, bool brain, cudaStream_t stream) {
  to_half_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(x, n, out, brain);
  check_launch("to_half");
}

}  // namespace banyan::gpu
