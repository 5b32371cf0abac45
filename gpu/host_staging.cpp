#include "gpu/host_staging.hpp"

#include <algorithm>

#include "gpu/cuda_check.hpp"

namespace banyan::gpu {

HostStaging::~HostStaging() {
  if (sent_) {
    cudaEventSynchronize(sent_);
    cudaEventDestroy(sent_);
  }
  if (host_) cudaFreeHost(host_);
}

std::byte* HostStaging::take(std::size_t bytes) {
  if (sent_) check(cudaEventSynchronize(sent_), "waiting for an upload");
  if (bytes > bytes_) {
    if (host_) check(cudaFreeHost(host_), "freeing pinned memory");
    host_ = nullptr;
    bytes_ = 0;
    const std::size_t size = std::max<std::size_t>(bytes, 64 << 10);
    check(cudaMallocHost(reinterpret_cast<void**>(&host_), size), "allocating pinned memory");
    bytes_ = size;
  }
  return host_;
}

void HostStaging::send(void* device, std::size_t bytes, cudaStream_t stream) {
  if (!sent_) check(cudaEventCreateWithFlags(&sent_, cudaEventDisableTiming), "creating an event");
  check(cudaMemcpyAsync(device, host_, bytes, cudaMemcpyHostToDevice, stream), "uploading batch data");
  check(cudaEventRecord(sent_, stream), "recording an event");
}

}  // namespace banyan::gpu
