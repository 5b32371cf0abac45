#pragma once
// Offloading on a CUDA device (model/weight_paging.hpp). The units the plan keeps resident are
// uploaded once. The others are copied into pinned, device-mapped host memory, the host tier
// (the mapped file is the disk tier), and stream through `in_flight` device slots:
//   acquire(u): unless u is in a slot already (prefetched, or kept from the last pass), queue its
//     copy into a free slot on the copy stream; make the compute stream wait for the copy's
//     event; then queue the copies of the units that follow u into the slots no unit ahead holds.
//   release(u): record an event on the compute stream; the next copy into u's slot waits for it.
// The host only queues, never waits for a copy, so each copy overlaps the compute queued before
// it. Outside acquire and release a unit's weights point at its host copy, which kernels can
// read across the bus: that is how the embedding table, of which a pass reads a few rows, is
// read (the on-demand unit, or a tied classifier's). int4/int8 units travel compressed: the
// kernels read them as they are. Stall time is the compute stream's waiting for copies, timed by
// events around each wait.
#include <condition_variable>
#include <cstddef>
#include <cuda_runtime_api.h>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "gpu/cuda_weight.hpp"
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
    std::size_t bytes = 0;
    std::vector<std::pair<CudaWeight*, std::size_t>> weights;  // and their offsets
    int slot = -1;                                             // the slot holding it, or -1
    void point_at(const std::byte* base);                      // the weights' views
  };
  static HostUnit to_host(const PagedUnit& u);
  struct Slot {
    DeviceMemory memory;
    int position = -1;    // the streamed unit it holds (copied or being copied), or -1
    bool in_use = false;  // acquired and not yet released
    Event arrived, freed;  // its last copy done; the compute stream past its last release
  };
  struct StallTiming {
    Event before, after;  // around one wait of the compute stream
  };

  static Event event(bool timing);
  // Positions are indexes in streamed_. The window at w: the slots' count of positions from w on,
  // wrapping round to the next pass.
  bool in_window(int position, int w) const;
  // A slot not in use, empty or holding a unit outside the window at w (with `any`: or inside it,
  // for a unit acquired out of order), or -1.
  int free_slot(int w, bool any) const;
  void copy_in(int position, int slot);  // queues the unit's copy into the slot
  void prefetch(int w);                  // queues the copies of the window's units no slot holds
  void collect_stalls() const;           // adds the finished waits' times to stats_

  std::vector<PagedUnit> units_;
  Enter enter_;
  cudaStream_t compute_;
  cudaStream_t copy_ = nullptr;
  std::vector<int> position_;  // per unit: its index in streamed_, or -1 (resident)
  std::vector<int> streamed_;  // streamed units, in order
  std::vector<HostUnit> streamed_units_;  // by position
  std::vector<HostUnit> on_demand_;       // read where they lie
  std::vector<Slot> slots_;
  mutable std::mutex m_;
  std::condition_variable slot_released_;
  mutable OffloadStats stats_;
  mutable std::deque<StallTiming> timing_, spare_timing_;
};

}  // namespace banyan::gpu
