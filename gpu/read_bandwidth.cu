// The device's memory read bandwidth, measured as the CPU bench measures the host's: a kernel
// that reads a buffer several times the L2 once per pass, timed with events.
#include <algorithm>
#include <vector>

#include "gpu/cuda_check.hpp"
#include "gpu/cuda_device.hpp"
#include "gpu/device_memory.hpp"

namespace banyan::gpu {

namespace {

__global__ void read_kernel(const float4* data, std::size_t n, float* sink) {
  float4 sum = {0, 0, 0, 0};
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const float4 v = data[i];
    sum.x += v.x;
    sum.y += v.y;
    sum.z += v.z;
    sum.w += v.w;
  }
  // Never true for the zeroed buffer; keeps the loads from being optimised away.
  if (sum.x + sum.y + sum.z + sum.w != 0.0f) sink[0] = sum.x;
}

}  // namespace

double read_gb_per_s(std::size_t bytes, int passes) {
  DeviceMemory buffer(bytes), sink(sizeof(float));
  check(cudaMemset(buffer.data(), 0, bytes), "read bandwidth: clearing the buffer");
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "read bandwidth: device attributes");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "read bandwidth: events");
  check(cudaEventCreate(&stop), "read bandwidth: events");
  std::vector<float> ms;
  for (int p = 0; p <= passes; ++p) {  // pass 0 warms up
    cudaEventRecord(start);
    read_kernel<<<unsigned(sms * 8), 512>>>(buffer.as<const float4>(), bytes / sizeof(float4), sink.as<float>());
    cudaEventRecord(stop);
    check(cudaEventSynchronize(stop), "read bandwidth: the read kernel");
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    if (p > 0) ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return double(bytes) / (double(ms[ms.size() / 2]) * 1e-3) / 1e9;
}

}  // namespace banyan::gpu
