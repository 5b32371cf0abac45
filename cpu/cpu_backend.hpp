#pragma once
// The CPU backend: weights in f32, f16, int8 or int4 in host memory (kept as given, so a mapped
// `banyan convert` file is used in place), activations in f32, kernels chosen for the CPU at
// start-up (simd_kernels.hpp), work spread over a fork-join thread pool.
#include <memory>

#include "model/backend.hpp"

namespace banyan::cpu {

struct CpuOptions {
  int threads = 0;    // 0: one per core
  int spin_us = 100;  // how long idle workers spin before sleeping (0: sleep at once)
};

std::unique_ptr<Backend> make_cpu_backend(const CpuOptions& options = {});

}  // namespace banyan::cpu
