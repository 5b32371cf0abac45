// The entry points `banyan` and the bench programs look up after loading this plugin
// (engine/device_backend.cpp).
#include <memory>
#include <vector>

#include "gpu/cuda_backend.hpp"
#include "gpu/nccl_collective.hpp"

extern "C" banyan::Backend* banyan_make_cuda_backend_on(int device) {
  return banyan::gpu::make_cuda_backend(device).release();
}

extern "C" int banyan_cuda_device_count() { return banyan::gpu::cuda_device_count(); }

// One collective per backend into out[0..count): tensor shards on their own GPUs, summing through NCCL.
extern "C" void banyan_make_nccl_all_reduce(banyan::Backend* const* backends, int count,
                                            std::shared_ptr<banyan::Collective>* out) {
  auto ranks = banyan::gpu::nccl_all_reduce({backends, std::size_t(count)});
  for (int i = 0; i < count; ++i) out[i] = std::move(ranks[std::size_t(i)]);
}

// Device 0 and the libraries, for the bench's header line.
extern "C" const char* banyan_cuda_description() {
  static const std::string text = banyan::gpu::cuda_device_description() + "; " + banyan::gpu::cuda_library_versions();
  return text.c_str();
}

// Device 0's memory read bandwidth in GB/s, the bench's baseline.
extern "C" double banyan_cuda_read_gb_per_s() { return banyan::gpu::read_gb_per_s(); }
