// The entry points `banyan` and the bench programs look up after loading this plugin
// (engine/device_backend.cpp).
#include "gpu/cuda_backend.hpp"

extern "C" banyan::Backend* banyan_make_cuda_backend() { return banyan::gpu::make_cuda_backend().release(); }

// Device 0 and the libraries, for the bench's header line.
extern "C" const char* banyan_cuda_description() {
  static const std::string text = banyan::gpu::cuda_device_description() + "; " + banyan::gpu::cuda_library_versions();
  return text.c_str();
}

// Device 0's memory read bandwidth in GB/s, the bench's baseline.
extern "C" double banyan_cuda_read_gb_per_s() { return banyan::gpu::read_gb_per_s(); }
