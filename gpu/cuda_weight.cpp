#include "gpu/cuda_weight.hpp"

#include "gpu/cuda_check.hpp"

namespace banyan::gpu {

WeightView view_at(const WeightData& w, const void* device) {
  const bool grouped = w.format == WeightFormat::q8 || w.format == WeightFormat::q4;
  return {device, w.format, w.rows, w.cols, grouped ? w.quant_bytes() : 0};
}

void upload_resident(const WeightData& w, CudaWeight& into) {
  into.memory = DeviceMemory(w.bytes.size());
  check(cudaMemcpy(into.memory.data(), w.bytes.data(), w.bytes.size(), cudaMemcpyHostToDevice), "uploading a weight");
  into.view = view_at(w, into.memory.data());
}

}  // namespace banyan::gpu
