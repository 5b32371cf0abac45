#include "gpu/device_memory.hpp"

#include <cuda_runtime_api.h>
#include <string>

#include "model/error.hpp"

namespace banyan::gpu {

DeviceMemory::DeviceMemory(std::size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t status = cudaMalloc(&data_, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky: the device stays usable
    std::size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    throw Error("cuda: cannot allocate " + std::to_string(bytes >> 20) + " MiB of device memory (" +
                std::to_string(free >> 20) + " of " + std::to_string(total >> 20) + " MiB free): " +
                cudaGetErrorString(status));
  }
}

DeviceMemory::~DeviceMemory() {
  if (data_) cudaFree(data_);
}

}  // namespace banyan::gpu
