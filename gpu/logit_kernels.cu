// Summaries of rows of logits (model/logit_summary.hpp's layout): the k best tokens, largest
// logit first and ties to the lower token, for k >= 2 the row's log-sum-exp, and for a row given
// a temperature T > 0 the log of its weight at T, log sum exp((logit - best) / T). One block per
// row finds the tokens in k rounds, each the best token ranking after the one the last round found.
#include "gpu/cuda_check.hpp"
#include "gpu/device_math.cuh"
#include "gpu/kernels.hpp"

namespace banyan::gpu {

namespace {

constexpr int kThreads = 512;

struct Pick {
  float value;
  int token;  // -1: none, ranking after everything
};

__device__ __forceinline__ bool ranks_before(Pick a, Pick b) {
  if (b.token < 0) return a.token >= 0;
  if (a.token < 0) return false;
  return a.value > b.value || (a.value == b.value && a.token < b.token);
}

__device__ __forceinline__ Pick shuffle_xor(Pick p, int offset) {
  return {__shfl_xor_sync(0xffffffffu, p.value, offset), __shfl_xor_sync(0xffffffffu, p.token, offset)};
}

// The best pick of the block; every thread gets it.
__device__ __forceinline__ Pick block_best(Pick p) {
  return block_reduce(p, Pick{0.0f, -1}, [](Pick a, Pick b) { return ranks_before(b, a) ? b : a; });
}

__global__ void summarise_kernel(const float* logits, int vocab, int k, const float* temperatures, float* out) {
  const float* row = logits + std::int64_t(blockIdx.x) * vocab;
  float* summary = out + std::int64_t(blockIdx.x) * (2 * k + 2);
  Pick last{0.0f, -1}, first{0.0f, -1};
  for (int i = 0; i < k; ++i) {
    Pick mine{0.0f, -1};
    for (int t = threadIdx.x; t < vocab; t += blockDim.x) {
      const Pick candidate{row[t], t};
      if ((last.token < 0 || ranks_before(last, candidate)) && ranks_before(candidate, mine)) mine = candidate;
    }
    last = block_best(mine);
    if (i == 0) first = last;
    if (threadIdx.x == 0) {
      summary[i] = last.value;
      summary[k + i] = float(last.token);
    }
  }
  const float nan = __int_as_float(0x7fc00000);
  if (k == 1) {  // an argmax: no log-sum-exp (logit_summary.hpp)
    if (threadIdx.x == 0) summary[2] = nan;
  } else {
    float sum = 0.0f;
    for (int t = threadIdx.x; t < vocab; t += blockDim.x) sum += expf(row[t] - first.value);
    sum = block_sum(sum);
    if (threadIdx.x == 0) summary[2 * k] = first.value + logf(sum);
  }
  const float temperature = temperatures ? temperatures[blockIdx.x] : 0.0f;
  if (!(temperature > 0.0f)) {
    if (threadIdx.x == 0) summary[2 * k + 1] = nan;
    return;
  }
  float weight = 0.0f;
  for (int t = threadIdx.x; t < vocab; t += blockDim.x) weight += expf((row[t] - first.value) / temperature);
  weight = block_sum(weight);
  if (threadIdx.x == 0) summary[2 * k + 1] = logf(weight);
}

}  // namespace

void summarise_logits(const float* logits, int rows, int vocab, int k, const float* temperatures, float* out,
                      cudaStream_t stream) {
  if (rows == 0) return;
  summarise_kernel<<<unsigned(rows), kThreads, 0, stream>>>(logits, vocab, k, temperatures, out);
  check_launch("summarise_logits");
}

}  // namespace banyan::gpu
