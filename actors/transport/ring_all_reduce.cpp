#include "actors/transport/ring_all_reduce.hpp"

#include <random>

#include "model/error.hpp"

namespace banyan::transport {

namespace {

constexpr int kCallBits = 12;  // all-reduces within one round (two per layer)
constexpr auto kCheckEvery = std::chrono::milliseconds(50);

}  // namespace

RingAllReduce::RingAllReduce(std::shared_ptr<DataPlane> plane, std::string next_host, int next_port, RingOptions options)
    : plane_(std::move(plane)), next_host_(std::move(next_host)), next_port_(next_port), options_(std::move(options)) {
  if (options_.group > 0x3ff) throw Error("ring all-reduce: group " + std::to_string(options_.group) + " is over 1023");
  if (options_.size < 1 || options_.size > 128 || options_.rank < 0 || options_.rank >= options_.size)
    throw Error("ring all-reduce: rank " + std::to_string(options_.rank) + " of " + std::to_string(options_.size) +
                " does not exist");
}

// 00 | group (10 bits) | round (24) | call within the round (12) | receiving rank (8) | step (8)
std::uint64_t RingAllReduce::tag(int to_rank, int step) const {
  return (std::uint64_t(options_.group) << 52) | ((call_ & 0xf'ffff'ffff) << 16) | (std::uint64_t(to_rank) << 8) |
         std::uint64_t(step);
}

void RingAllReduce::begin_round(std::uint64_t round) { call_ = round << kCallBits; }

std::span<float> RingAllReduce::chunk(std::span<float> values, int c) const {
  const std::size_t begin = std::size_t(c) * values.size() / std::size_t(options_.size);
  const std::size_t end = std::size_t(c + 1) * values.size() / std::size_t(options_.size);
  return values.subspan(begin, end - begin);
}

void RingAllReduce::send_chunk(std::span<const float> values, int step) {
  // A copy: the values change before the next rank has them.
  auto copy = std::make_shared<const std::vector<float>>(values.begin(), values.end());
  sends_.push_back(plane_->send(next_, tag((options_.rank + 1) % options_.size, step), std::as_bytes(std::span(*copy)), copy));
}

void RingAllReduce::check_on_others(int step) {
  const auto where = [&] { return " (all-reduce step " + std::to_string(step) + ")"; };
  for (auto& s : sends_) {
    if (!s.valid() || s.wait_for(std::chrono::seconds(0)) != std::future_status::ready) continue;
    try {
      s.get();
    } catch (const std::exception& e) {
      throw Error("tensor shard " + std::to_string(options_.rank) + " cannot reach shard " +
                  std::to_string((options_.rank + 1) % options_.size) + where() + ": " + e.what());
    }
  }
  if (options_.abandon)
    if (const std::string why = options_.abandon(); !why.empty())
      throw Error("tensor shard " + std::to_string(options_.rank) + " gave up" + where() + ": " + why);
}

void RingAllReduce::receive_chunk(int step, std::span<float> into, bool add) {
  const int rank = options_.rank, before = (rank + options_.size - 1) % options_.size;
  // Into scratch memory used call after call (fresh pages cost more than the copy); the scratch
  // is the place's own, so a receive given up on cannot write into freed memory.
  auto scratch = scratch_;
  auto arriving = plane_->receive_into(tag(rank, step), [scratch](std::size_t n) {
    scratch->resize((n + sizeof(float) - 1) / sizeof(float));
    return reinterpret_cast<std::byte*>(scratch->data());
  });
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  while (arriving.wait_for(kCheckEvery) != std::future_status::ready) {
    try {
      check_on_others(step);
      if (std::chrono::steady_clock::now() > deadline)
        throw Error("tensor shard " + std::to_string(rank) + " heard nothing from shard " + std::to_string(before) +
                    " within " + std::to_string(options_.timeout.count()) + " ms (all-reduce step " +
                    std::to_string(step) + ")");
    } catch (...) {
      scratch_ = std::make_shared<std::vector<float>>();  // the late message may still land in the old one
      throw;
    }
  }
  const std::size_t bytes = arriving.get();
  if (bytes != into.size() * sizeof(float))
    throw Error("tensor shard " + std::to_string(rank) + ": all-reduce step " + std::to_string(step) + " brought " +
                std::to_string(bytes) + " bytes, expected " + std::to_string(into.size() * sizeof(float)));
  const float* in = scratch->data();
  for (std::size_t i = 0; i < into.size(); ++i) into[i] = add ? into[i] + in[i] : in[i];
}

void RingAllReduce::all_reduce_sum(std::span<float> values) {
  const int size = options_.size, rank = options_.rank;
  if (size == 1) return;
  const auto start = std::chrono::steady_clock::now();
  const auto mod = [&](int i) { return ((i % size) + size) % size; };
  sends_.clear();
  if (next_ < 0 || plane_->failed(next_)) next_ = plane_->connect(next_host_, next_port_);
  // Reduce-scatter: after step s, chunk rank - s - 1 holds s + 2 ranks' values.
  for (int s = 0; s + 1 < size; ++s) {
    send_chunk(chunk(values, mod(rank - s)), s);
    receive_chunk(s, chunk(values, mod(rank - s - 1)), true);
  }
  // All-gather: the finished chunks go round.
  for (int s = 0; s + 1 < size; ++s) {
    send_chunk(chunk(values, mod(rank + 1 - s)), size - 1 + s);
    receive_chunk(size - 1 + s, chunk(values, mod(rank - s)), false);
  }
  ++call_;
  std::lock_guard lock(stats_mutex_);
  ++stats_.calls;
  stats_.bytes += 2 * std::uint64_t(size - 1) * values.size() * sizeof(float) / std::uint64_t(size);
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

CollectiveStats RingAllReduce::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

std::vector<std::shared_ptr<Collective>> local_ring(std::shared_ptr<DataPlane> plane, int size) {
  std::random_device random;
  const std::uint32_t group = random() % kSpreadRingGroups;
  std::vector<std::shared_ptr<Collective>> ranks;
  for (int r = 0; r < size; ++r)
    ranks.push_back(std::make_shared<RingAllReduce>(plane, "127.0.0.1", plane->port(), RingOptions{.rank = r, .size = size, .group = group}));
  return ranks;
}

}  // namespace banyan::transport
