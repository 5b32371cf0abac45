#pragma once
// Tensor shards summing their partial results over the data plane (UCX): a ring all-reduce.
// Each of the `size` ranks sends to the next and receives from the one before: first a
// reduce-scatter (size - 1 steps, after which rank r holds the full sum of chunk r + 1), then an
// all-gather (size - 1 steps), so every rank ends with the same bits and each moves
// 2 (size - 1) / size of the values. The ranks may share a process (each then sends to its own
// data plane, which UCX carries over shared memory or loopback) or not.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "actors/transport/data_plane.hpp"
#include "model/collective.hpp"

namespace banyan::transport {

class RingAllReduce final : public Collective {
 public:
  // `next`: the data plane handle of rank + 1's plane (mod size). `group` tells this ring's
  // messages from any other's on the same planes: give every ring its own. A rank that hears
  // nothing from the one before it within `timeout` throws Error.
  RingAllReduce(std::shared_ptr<DataPlane> plane, int next, int rank, int size, std::uint32_t group,
                std::chrono::milliseconds timeout = std::chrono::seconds(30));

  void all_reduce_sum(std::span<float> values) override;
  CollectiveStats stats() const override;

 private:
  // Chunk c of `values`: the size parts the ring cuts them into, in order.
  std::span<float> chunk(std::span<float> values, int c) const;
  void send_chunk(std::span<const float> chunk, int step);
  std::uint64_t tag(int to_rank, int step) const;

  std::shared_ptr<DataPlane> plane_;
  int next_, rank_, size_;
  std::uint32_t group_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<std::vector<float>> scratch_ = std::make_shared<std::vector<float>>();  // what arrives
  std::uint64_t call_ = 0;  // calls so far: part of each tag, so no message can match another call's receive
  mutable std::mutex stats_mutex_;
  CollectiveStats stats_;
};

// `size` ranks in this process, each with its own ring position on `plane` (ranks 0..size-1 of
// the result): the tensor shards of a stage that runs here.
std::vector<std::shared_ptr<Collective>> local_ring(std::shared_ptr<DataPlane> plane, int size);

}  // namespace banyan::transport
