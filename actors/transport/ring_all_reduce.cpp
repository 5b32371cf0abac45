#include "actors/transport/ring_all_reduce.hpp"

#include <random>

#include "model/error.hpp"

namespace banyan::transport {

RingAllReduce::RingAllReduce(std::shared_ptr<DataPlane> plane, int next, int rank, int size, std::uint32_t group,
                             std::chrono::milliseconds timeout)
    : plane_(std::move(plane)), next_(next), rank_(rank), size_(size), group_(group & 0xff'ffff), timeout_(timeout) {
  if (size < 1 || size > 128 || rank < 0 || rank >= size)
    throw Error("ring all-reduce: rank " + std::to_string(rank) + " of " + std::to_string(size) + " does not exist");
}

// group (24 bits) | call (24 bits) | receiving rank (8) | step (8)
std::uint64_t RingAllReduce::tag(int to_rank, int step) const {
  return (std::uint64_t(group_) << 40) | ((call_ & 0xff'ffff) << 16) | (std::uint64_t(to_rank) << 8) | std::uint64_t(step);
}

std::span<float> RingAllReduce::chunk(std::span<float> values, int c) const {
  const std::size_t begin = std::size_t(c) * values.size() / std::size_t(size_);
  const std::size_t end = std::size_t(c + 1) * values.size() / std::size_t(size_);
  return values.subspan(begin, end - begin);
}

void RingAllReduce::send_chunk(std::span<const float> values, int step) {
  // A copy: the values change before the next rank has them. A send that fails shows as the
  // next rank's timeout.
  auto copy = std::make_shared<const std::vector<float>>(values.begin(), values.end());
  plane_->send(next_, tag((rank_ + 1) % size_, step), std::as_bytes(std::span(*copy)), copy);
}

void RingAllReduce::all_reduce_sum(std::span<float> values) {
  if (size_ == 1) return;
  const auto start = std::chrono::steady_clock::now();
  const auto receive = [&](int step, std::span<float> into, bool add) {
    // Into scratch memory used call after call (fresh pages cost more than the copy); the
    // scratch is the place's own, so a receive given up on cannot write into freed memory.
    auto scratch = scratch_;
    auto arriving = plane_->receive_into(tag(rank_, step), [scratch](std::size_t n) {
      scratch->resize((n + sizeof(float) - 1) / sizeof(float));
      return reinterpret_cast<std::byte*>(scratch->data());
    });
    if (arriving.wait_for(timeout_) != std::future_status::ready) {
      scratch_ = std::make_shared<std::vector<float>>();  // the late message may still land in the old one
      throw Error("tensor shard " + std::to_string(rank_) + " heard nothing from shard " +
                  std::to_string((rank_ + size_ - 1) % size_) + " within " + std::to_string(timeout_.count()) +
                  " ms (all-reduce step " + std::to_string(step) + ")");
    }
    const std::size_t bytes = arriving.get();
    if (bytes != into.size() * sizeof(float))
      throw Error("tensor shard " + std::to_string(rank_) + ": all-reduce step " + std::to_string(step) + " brought " +
                  std::to_string(bytes) + " bytes, expected " + std::to_string(into.size() * sizeof(float)));
    const float* in = scratch->data();
    for (std::size_t i = 0; i < into.size(); ++i) into[i] = add ? into[i] + in[i] : in[i];
  };
  const auto mod = [&](int i) { return ((i % size_) + size_) % size_; };
  // Reduce-scatter: after step s, chunk rank - s - 1 holds s + 2 ranks' values.
  for (int s = 0; s + 1 < size_; ++s) {
    send_chunk(chunk(values, mod(rank_ - s)), s);
    receive(s, chunk(values, mod(rank_ - s - 1)), true);
  }
  // All-gather: the finished chunks go round.
  for (int s = 0; s + 1 < size_; ++s) {
    send_chunk(chunk(values, mod(rank_ + 1 - s)), size_ - 1 + s);
    receive(size_ - 1 + s, chunk(values, mod(rank_ - s)), false);
  }
  ++call_;
  std::lock_guard lock(stats_mutex_);
  ++stats_.calls;
  stats_.bytes += 2 * std::uint64_t(size_ - 1) * values.size() * sizeof(float) / std::uint64_t(size_);
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

CollectiveStats RingAllReduce::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

std::vector<std::shared_ptr<Collective>> local_ring(std::shared_ptr<DataPlane> plane, int size) {
  const int self = plane->connect("127.0.0.1", plane->port());
  std::random_device random;
  const std::uint32_t group = random();
  std::vector<std::shared_ptr<Collective>> ranks;
  for (int r = 0; r < size; ++r) ranks.push_back(std::make_shared<RingAllReduce>(plane, self, r, size, group));
  return ranks;
}

}  // namespace banyan::transport
