#pragma once
// A weight on the CUDA backend. A resident one lies in its own device memory. An offloaded one
// (Backend::upload_offloaded) keeps its host bytes until a paging (gpu/weight_stream.hpp) takes
// them; its view then points wherever the paging put its unit: its own memory when the plan keeps
// it resident, a streaming slot while the unit is acquired.
#include "gpu/device_memory.hpp"
#include "gpu/kernels.hpp"
#include "model/backend.hpp"

namespace banyan::gpu {

struct CudaWeight : DeviceWeight {
  DeviceMemory memory;  // a resident weight's
  WeightData host;      // an offloaded weight's bytes, until paged
  WeightView view;      // what the kernels read
};

// The view of `w`'s layout with its bytes at `device`.
WeightView view_at(const WeightData& w, const void* device);
// Copies `w` into `into`'s own device memory (waits for the copy) and points its view there.
void upload_resident(const WeightData& w, CudaWeight& into);

}  // namespace banyan::gpu
