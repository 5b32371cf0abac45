#include "gpu/cuda_device.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

namespace banyan::gpu {

int cuda_device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls are not poisoned
    return 0;
  }
  if (count == 0 && why) *why = "the CUDA runtime found no device";
  return count;
}

std::string cuda_library_versions() {
  int runtime = 0, nccl = 0, cublas_major = 0, cublas_minor = 0;
  cudaRuntimeGetVersion(&runtime);
  ncclGetVersion(&nccl);
  cublasGetProperty(MAJOR_VERSION, &cublas_major);
  cublasGetProperty(MINOR_VERSION, &cublas_minor);
  return "CUDA runtime " + std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10) +
         ", cuBLAS " + std::to_string(cublas_major) + "." + std::to_string(cublas_minor) + ", NCCL " +
         std::to_string(nccl);
}

std::string cuda_device_description() {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return "no CUDA device";
  return std::string(p.name) + ", " + std::to_string(p.multiProcessorCount) + " SMs, " +
         std::to_string(p.totalGlobalMem >> 30) + " GiB, compute capability " + std::to_string(p.major) + "." +
         std::to_string(p.minor);
}

}  // namespace banyan::gpu
