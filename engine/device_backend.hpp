#pragma once
// The backend a `--device` choice names: the CPU backend, or the CUDA backend, which is a plugin
// (libbanyan_cuda.so, gpu/CMakeLists.txt says why) loaded on first use and kept loaded.
#include <memory>
#include <string>

#include "model/backend.hpp"

namespace banyan {

// device "cpu" (threads: 0 = one per core) or "cuda". Throws UsageError-like Error for an
// unknown device, Error when the CUDA backend cannot be loaded or finds no device.
std::unique_ptr<Backend> make_backend(const std::string& device, int threads);

// What the CUDA plugin says about device 0 and the libraries; its memory read bandwidth (GB/s).
// Both load the plugin; they throw as make_backend does.
std::string cuda_description();
double cuda_read_gb_per_s();

}  // namespace banyan
