#include "gpu/cuda_backend.hpp"

#include "model/error.hpp"

namespace banyan::gpu {

std::unique_ptr<Backend> make_cuda_backend() {
  std::string why;
  if (cuda_device_count(&why) == 0) throw Error("--device cuda: no CUDA device is available (" + why + ")");
  throw Error("--device cuda: the CUDA backend's kernels are not implemented yet; use --device cpu");
}

}  // namespace banyan::gpu
