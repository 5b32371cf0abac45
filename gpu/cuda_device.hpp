#pragma once
// What the CUDA runtime says about the machine. Plain C++17 so nvcc can compile it.
#include <string>

namespace banyan::gpu {

// Number of usable CUDA devices; 0 (and the runtime's reason in `why`) when there are none,
// including when the machine has no driver at all.
int cuda_device_count(std::string* why = nullptr);

// Versions of the CUDA runtime, cuBLAS and NCCL this build links.
std::string cuda_library_versions();

}  // namespace banyan::gpu
