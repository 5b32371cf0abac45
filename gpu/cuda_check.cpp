#include "gpu/cuda_check.hpp"

#include <string>

#include "model/error.hpp"

namespace banyan::gpu {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  throw Error(std::string("cuda: ") + what + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

void check_launch(const char* what) { check(cudaGetLastError(), what); }

}  // namespace banyan::gpu
