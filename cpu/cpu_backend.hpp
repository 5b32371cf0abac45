#pragma once
// The CPU backend: f32 weights and activations in host memory, matrix products through
// OpenBLAS, the other kernels spread over a fork-join thread pool.
#include <memory>

#include "model/backend.hpp"

namespace banyan::cpu {

struct CpuOptions {
  int threads = 0;  // 0: one per core
};

std::unique_ptr<Backend> make_cpu_backend(const CpuOptions& options = {});

}  // namespace banyan::cpu
