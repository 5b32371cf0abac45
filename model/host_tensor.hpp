#pragma once
// A tensor in host memory as f32, in the shape a checkpoint gives it.
#include <cstdint>
#include <string>
#include <vector>

namespace banyan {

struct HostTensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;

  std::int64_t numel() const;
};

std::string shape_string(const std::vector<std::int64_t>& shape);

}  // namespace banyan
