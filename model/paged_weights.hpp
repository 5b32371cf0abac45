#pragma once
// Offloading on a node whose compute reads weights in host memory (the CPU backend): the
// weights stay in a memory-mapped `banyan convert` file (the disk tier) and only a budget of
// them is mapped in at a time (the device tier: on a CPU node, the process's resident pages).
// Units (a decoder layer's matrices, the classifier) that fit the budget stay resident; the
// others stream: a background thread maps the next units in while the current one computes,
// and a unit's pages are dropped once it is used. Nothing is copied: compute reads the same
// page-cache pages a read would fill, and int4/int8 weights stay compressed all the way.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "model/weight_paging.hpp"

namespace banyan {

class PagedWeights : public WeightPaging {
 public:
  // `evict`: dropped units leave the page cache too, so the next stream reads the disk (what a
  // node whose memory cannot hold the file sees; it also spares other processes' memory).
  PagedWeights(std::vector<PagedUnit> units, OffloadPlan plan, bool evict = false);
  ~PagedWeights() override;
  PagedWeights(const PagedWeights&) = delete;
  PagedWeights& operator=(const PagedWeights&) = delete;

  // Returns once `unit` is mapped in, and starts mapping in the streamed units that follow it.
  void acquire(int unit) override;
  // Drops a streamed (or on-demand) unit's pages.
  void release(int unit) override;
  OffloadStats stats() const override;

 private:
  enum class State { out, queued, loading, in };
  void worker();
  void drop_locked(int unit);

  std::vector<PagedUnit> units_;
  std::vector<std::vector<std::span<const std::byte>>> spans_;  // each unit's ranges, neighbours merged
  OffloadPlan plan_;
  bool evict_;
  std::vector<int> streamed_;   // units that stream, in order
  std::vector<int> position_;   // per unit: its index in streamed_, or -1
  mutable std::mutex m_;
  std::condition_variable work_, done_;
  std::vector<State> state_;
  std::vector<bool> cancelled_;  // dropped while loading: the worker drops it when done
  std::deque<int> queue_;
  bool stop_ = false;
  OffloadStats stats_;
  std::thread worker_;
};

}  // namespace banyan
