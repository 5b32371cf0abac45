#pragma once
// The CUDA backend. Its kernels are issue 8's work; today it finds the device, and says
// clearly when there is none, so that `--device cuda` never crashes.
#include <memory>

#include "gpu/cuda_device.hpp"
#include "model/backend.hpp"

namespace banyan::gpu {

// Throws Error when no device is usable or the backend cannot run on it.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace banyan::gpu
