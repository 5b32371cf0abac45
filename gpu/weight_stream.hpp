#pragma once
// Offloading on a CUDA device (model/weight_paging.hpp). The units the plan keeps resident are
// uploaded once. The others are copied into pinned, device-mapped host memory, the host tier
// (the mapped file is the disk tier), and stream through `in_flight` device slots, as a
// SlotSchedule (model/slot_schedule.hpp) says: acquire queues the copies it names on a copy
// stream and makes the compute stream wait for the unit's copy; release records an event on the
// compute stream that the next copy into its slot waits for. The host only queues, never waits
// for a copy, so each copy overlaps the compute queued before it. Outside acquire and release a
// unit's weights point at its host copy, which kernels can read across the bus: that is how the
// embedding table, of which a pass reads a few rows, is read (the on-demand unit, or a tied
// classifier's). int4/int8 units travel compressed: the kernels read them as they are. Stall
// time is the compute stream's waiting for copies, timed by events around each wait.
#include <condition_variable>
#include <cstddef>
#include <cuda_runtime_api.h>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "gpu/cuda_weight.hpp"
#include "model/slot_schedule.hpp"
#include "model/weight_paging.hpp"

namespace banyan::gpu {

class CudaWeightPaging : public WeightPaging {
 public:
  // Takes the backend's lock and selects its device, for queueing work on `compute`.
  using Enter = std::function<std::unique_lock<std::mutex>()>;

  // `units` hold CudaWeights uploaded with Backend::upload_offloaded.
  CudaWeightPaging(std::vector<PagedUnit> units, const OffloadPlan& plan, Enter enter, cudaStream_t compute);
  ~CudaWeightPaging() override;
  CudaWeightPaging(const CudaWeightPaging&) = delete;
  CudaWeightPaging& operator=(const CudaWeightPaging&) = delete;

  void acquire(int unit) override;
  void release(int unit) override;
  OffloadStats stats() const override;

 private:
  struct FreeHost {
    void operator()(std::byte* p) const { cudaFreeHost(p); }
  };
  struct DestroyEvent {
    void operator()(CUevent_st* e) const { cudaEventDestroy(e); }
  };
  using Event = std::unique_ptr<CUevent_st, DestroyEvent>;

  // A unit in the host tier: its weights packed into one pinned block, in a slot at the same offsets.
  struct HostUnit {
    std::unique_ptr<std::byte[], FreeHost> host;
    const std::byte* mapped = nullptr;  // the block's address on the device
    std::size_t bytes = 0;              // the block's (each weight aligned)
    std::size_t file_bytes = 0;         // the weights' own, as the stats count them
    std::vector<std::pair<CudaWeight*, std::size_t>> weights;  // and their offsets
    int acquired_slot = -1;                                    // while acquired
    void point_at(const std::byte* base);                      // the weights' views
  };
  struct Slot {
    DeviceMemory memory;
    Event arrived, freed;  // its last copy done; the compute stream past its last release
  };
  struct StallTiming {
    Event before, after;  // around one wait of the compute stream
  };

  static Event event(bool timing);
  static HostUnit to_host(const PagedUnit& u);
  void queue(const std::vector<SlotSchedule::Copy>& copies);  // on the copy stream
  void collect_stalls() const;                                // adds the finished waits' times to stats_

  Enter enter_;
  cudaStream_t compute_;
  cudaStream_t copy_ = nullptr;
  std::vector<int> position_;             // per unit: its index among the streamed ones, or -1
  std::vector<HostUnit> streamed_units_;  // the streamed units in order, by position
  std::vector<HostUnit> on_demand_;       // read where they lie
  std::vector<Slot> slots_;
  std::optional<SlotSchedule> schedule_;
  mutable std::mutex m_;
  std::condition_variable slot_released_;
  mutable OffloadStats stats_;
  mutable std::deque<StallTiming> timing_, spare_timing_;
};

}  // namespace banyan::gpu
