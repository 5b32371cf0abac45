#pragma once
// The CUDA backend: weights on the device as stored (f32, f16, int8, int4), activations in f32,
// products by cuBLAS (f16 on tensor cores) or, for a few tokens, by kernels that read the stored
// weights directly; attention over a device KV cache with the token-tree mask (gpu/kernels.hpp).
#include <memory>

#include "gpu/cuda_device.hpp"
#include "model/backend.hpp"

namespace banyan::gpu {

// Throws Error when no device is usable or the backend cannot run on it.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace banyan::gpu
