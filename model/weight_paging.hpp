#pragma once
// Offloading: a model's largest weights (a decoder layer's matrices, the classifier) are grouped
// into units; under a memory budget some units stay resident and the others stream in while the
// unit before them computes. The plan (which units stay, how many stream at once) is the same
// for every backend; how a unit comes in is the backend's (Backend::page): the CPU maps the
// pages of the `banyan convert` file in (model/paged_weights.hpp), a GPU copies the unit from
// pinned host memory into a device slot (gpu/weight_stream.hpp).
#include <cstddef>
#include <span>
#include <vector>

namespace banyan {

class DeviceWeight;

struct PagedUnit {
  std::vector<std::span<const std::byte>> ranges;  // in a read-only file mapping
  std::vector<DeviceWeight*> weights;              // the backend's weights of those ranges, in the same order
  // Only a few rows are read (the embedding table): never prefetched, dropped after use, and
  // not counted against the budget.
  bool on_demand = false;
  std::size_t bytes() const;
};

struct OffloadPlan {
  std::vector<bool> resident;  // per unit
  int in_flight = 0;           // streamed units held at once: the one in use and those prefetched
  std::size_t resident_bytes = 0, reserve_bytes = 0;
};

// Keeps units resident, in order, while the budget leaves room for `in_flight` streamed units
// (3 when the three largest take at most half the budget, else 2; or as many as `reserve`
// bytes hold when given). Throws Error when the budget cannot hold two units in flight.
OffloadPlan plan_offload(const std::vector<PagedUnit>& units, std::size_t budget, std::size_t reserve = 0);

struct OffloadStats {
  std::size_t resident_bytes = 0;   // units that never leave
  std::size_t reserve_bytes = 0;    // room for the streamed units in flight
  std::size_t host_bytes = 0;       // streamed units waiting in host memory (a GPU's pinned tier; 0 on a CPU)
  std::size_t disk_bytes = 0;       // every unit's bytes, in the mapped file
  std::size_t streamed_bytes = 0;   // brought in by streaming, in all
  double stall_seconds = 0;         // compute waiting for units (and, on a CPU, dropping them)
  long long units_streamed = 0;
};

// Units are acquired and released in the order the forward pass uses them; the paging brings the
// units that follow an acquired one in ahead of time, wrapping round to the next pass.
class WeightPaging {
 public:
  virtual ~WeightPaging() = default;
  // Returns once `unit`'s weights can be computed with (on a GPU: once the compute queue will
  // wait for them), and starts bringing in the streamed units that follow it.
  virtual void acquire(int unit) = 0;
  // The compute is done with `unit` (on a GPU: once what is queued so far has run).
  virtual void release(int unit) = 0;
  virtual OffloadStats stats() const = 0;
};

}  // namespace banyan
