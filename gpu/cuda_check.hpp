#pragma once
// CUDA errors as banyan::Error, naming what failed. C++17, for host code and .cu files alike.
#include <cuda_runtime_api.h>

namespace banyan::gpu {

// Throws Error("cuda: <what>: <the runtime's name and message>") unless `status` is success.
void check(cudaError_t status, const char* what);
// Throws when the last kernel launch failed (bad configuration, no kernel image for this GPU).
void check_launch(const char* what);

}  // namespace banyan::gpu
