#pragma once
// Pinned host memory that small per-pass uploads (a batch's positions and masks, row indices)
// go through, so that their copies are queued rather than waited for.
#include <cstddef>
#include <cuda_runtime_api.h>

namespace banyan::gpu {

class HostStaging {
 public:
  HostStaging() = default;
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  ~HostStaging();

  // At least `bytes` of pinned memory, free to write: the last copy from it has finished.
  std::byte* take(std::size_t bytes);
  // Queues a copy of its first `bytes` to `device` on `stream`.
  void send(void* device, std::size_t bytes, cudaStream_t stream);

 private:
  std::byte* host_ = nullptr;
  std::size_t bytes_ = 0;
  cudaEvent_t sent_ = nullptr;
};

}  // namespace banyan::gpu
