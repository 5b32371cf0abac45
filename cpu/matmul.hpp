#pragma once
// out = x · wᵀ for every weight format, spread over the pool by rows of w.
//   few tokens (decode, small trees): dot products of a few weight rows with a few tokens at a
//     time (float formats), or of one row with each token while the row is still in L1
//     (quantized formats, which multiply int8 activations with the int weights).
//   many tokens (prefill): OpenBLAS sgemm on each thread's rows, expanded to f32 a block at a
//     time when the weights are compressed. Where sgemm starts is the kernel set's
//     (KernelSet::sgemm_from_f32, sgemm_from_expanded): the dots keep up with it to tens of
//     tokens. Compressed weights meet the int8-rounded activations the int kernels multiply,
//     so a product is the same function at every token count: with the f32 activations a
//     3072-long int8 dot came out up to ~1 off (in ~50) from 16 tokens on, which changed
//     greedy tokens between a step of 8 tokens and one of 16.
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "cpu/simd_kernels.hpp"
#include "cpu/thread_pool.hpp"
#include "model/weight_format.hpp"

namespace banyan::cpu {

// Tokens from which a product in format `f` takes the sgemm path.
int sgemm_threshold(const KernelSet& k, WeightFormat f);

class Matmul {
 public:
  // Sets OpenBLAS (process-wide) to run on the calling thread: large products run on the pool.
  Matmul(const KernelSet& kernels, ThreadPool& pool);

  // out [m, w->rows] = x · wᵀ, row-major f32.
  struct Product {
    const WeightData* w;
    float* out;
  };

  // x [m, w.cols] and out [m, w.rows], row-major f32.
  void run(const WeightData& w, const float* x, std::int64_t m, float* out);
  // Several products of the same x (q, k and v; gate and up), all with x's width. Weights of one
  // format go through the dots as one pass: one fork-join and x quantized once, where separate
  // calls paid both for each (the llama-160m layers' products: int8 0.91-1.00x the time, f32
  // 0.95-0.98x).
  void run(std::span<const Product> products, const float* x, std::int64_t m);

 private:
  void one_format(std::span<const Product> products, const float* x, std::int64_t m);
  void float_dots(std::span<const Product> products, const float* x, std::int64_t m);
  void quantized_dots(std::span<const Product> products, const float* x, std::int64_t m);
  // x [m, k] quantized as the int kernels take it (for int4 weights: interleaved), into qa_, sa_, ca_.
  void quantize_activations(const float* x, std::int64_t m, std::int64_t k, bool q4);
  // x rounded to those int8 values (q x scale, as f32), for sgemm with compressed weights.
  const float* rounded_activations(const float* x, std::int64_t m, std::int64_t k);
  void blocked_sgemm(const WeightData& w, const float* x, std::int64_t m, float* out);

  const KernelSet& k_;
  ThreadPool& pool_;
  // Models on other threads (SSM actors) share the backend; the pool runs one job at a time
  // anyway, so a product waiting for another costs nothing.
  std::mutex scratch_mutex_;
  // Activations quantized for the int kernels, reused between calls.
  std::vector<std::int8_t> qa_;
  std::vector<float> sa_, ca_;
  std::vector<float> rounded_;   // activations rounded to int8 for sgemm
};

}  // namespace banyan::cpu
