#pragma once
// What one node's memory holds: every weight of its models, and for those offloaded the tiers
// and traffic of their paging (model/weight_paging.hpp). The memory actor answers it; /metrics
// shows it per node.
#include <cstdint>

#include "model/weight_paging.hpp"

namespace banyan {

struct MemoryReport {
  std::uint64_t weight_bytes = 0;  // every model's weights, resident or streaming
  std::uint64_t budget_bytes = 0;  // the offloaded weights' budget; 0: none is offloaded
  OffloadStats paging;             // the offloaded weights' tiers and streaming
};

}  // namespace banyan
