#pragma once
// What the CUDA runtime says about the machine. Plain C++17 so nvcc can compile it.
#include <cstddef>
#include <string>

namespace banyan::gpu {

// Number of usable CUDA devices; 0 (and the runtime's reason in `why`) when there are none,
// including when the machine has no driver at all.
int cuda_device_count(std::string* why = nullptr);

// Versions of the CUDA runtime, cuBLAS and NCCL this build links.
std::string cuda_library_versions();

// Device 0's name, multiprocessors and memory, e.g. "NVIDIA H200, 132 SMs, 140 GiB".
std::string cuda_device_description();

// Device 0's memory read bandwidth in GB/s: the median of `passes` reads of `bytes`.
double read_gb_per_s(std::size_t bytes = std::size_t(2) << 30, int passes = 5);

}  // namespace banyan::gpu
