#pragma once
// Tensor shards summing their partial results over the data plane (UCX): a ring all-reduce.
// Each of the `size` ranks sends to the next and receives from the one before: first a
// reduce-scatter (size - 1 steps, after which rank r holds the full sum of chunk r + 1), then an
// all-gather (size - 1 steps), so every rank ends with the same bits and each moves
// 2 (size - 1) / size of the values. The ranks may share a process (each then sends to its own
// data plane, which UCX carries over shared memory or loopback) or not.
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/transport/data_plane.hpp"
#include "model/collective.hpp"

namespace banyan::transport {

// Ring groups: local_ring draws one below kSpreadRingGroups, the stages whose shards are
// spread over nodes take kSpreadRingGroups | their stage index. The tags keep the top two bits
// clear: the messages of Bulk (actors/bulk.hpp) on the same data plane set bit 62.
constexpr std::uint32_t kSpreadRingGroups = 0x200;

struct RingOptions {
  int rank = 0, size = 1;
  // Tells this ring's messages from any other's on the same planes: every rank of one ring
  // gives the same, other rings others; 0 to 0x3ff.
  std::uint32_t group = 0;
  // A rank that hears nothing from the one before it within `timeout` throws Error.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
  // Asked while waiting: why to give up at once (the other ranks' process is known to be gone,
  // say); empty: wait on.
  std::function<std::string()> abandon;
};

class RingAllReduce final : public Collective {
 public:
  // `next_host`:`next_port`: the data plane of rank + 1 (mod size), connected on first use and
  // again whenever the connection failed (its process restarted).
  RingAllReduce(std::shared_ptr<DataPlane> plane, std::string next_host, int next_port, RingOptions options);

  void all_reduce_sum(std::span<float> values) override;
  void begin_round(std::uint64_t round) override;
  CollectiveStats stats() const override;

 private:
  // Chunk c of `values`: the size parts the ring cuts them into, in order.
  std::span<float> chunk(std::span<float> values, int c) const;
  void send_chunk(std::span<const float> chunk, int step);
  void receive_chunk(int step, std::span<float> into, bool add);
  // Throws when a send of this call failed or `abandon` gives a reason.
  void check_on_others(int step);
  std::uint64_t tag(int to_rank, int step) const;

  std::shared_ptr<DataPlane> plane_;
  std::string next_host_;
  int next_port_;
  int next_ = -1;  // the connection to rank + 1's plane, once made
  RingOptions options_;
  std::vector<std::future<void>> sends_;  // this call's
  std::shared_ptr<std::vector<float>> scratch_ = std::make_shared<std::vector<float>>();  // what arrives
  // Rounds and calls so far (round << 12 | call within it): part of each tag, so no message can
  // match another call's receive.
  std::uint64_t call_ = 0;
  mutable std::mutex stats_mutex_;
  CollectiveStats stats_;
};

// `size` ranks in this process, each with its own ring position on `plane` (ranks 0..size-1 of
// the result): the tensor shards of a stage that runs here.
std::vector<std::shared_ptr<Collective>> local_ring(std::shared_ptr<DataPlane> plane, int size);

}  // namespace banyan::transport
