#pragma once
// The CUDA backend: weights on the device as stored (f32, f16, int8, int4), activations in f32,
// products by cuBLAS (f16 on tensor cores) or, for a few tokens, by kernels that read the stored
// weights directly; attention over a device KV cache with the token-tree mask (gpu/kernels.hpp).
#include <cuda_runtime_api.h>
#include <functional>
#include <memory>
#include <mutex>

#include "gpu/cuda_device.hpp"
#include "model/backend.hpp"

namespace banyan::gpu {

// On GPU `device` (0 to cuda_device_count() - 1). Throws Error when that device is not usable
// or the backend cannot run on it.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

// Where a CUDA backend's work goes, for work queued beside it (gpu/nccl_collective): its GPU, its
// stream, and its lock, under which the backend's GPU is the calling thread's current device.
// Throws Error for a backend that is not a CUDA backend.
struct CudaQueue {
  int device = 0;
  cudaStream_t stream = nullptr;
  std::function<std::unique_lock<std::mutex>()> enter;
};
CudaQueue cuda_queue(Backend& backend);

}  // namespace banyan::gpu
