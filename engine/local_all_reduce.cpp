#include "engine/local_all_reduce.hpp"

#include <barrier>
#include <chrono>
#include <mutex>

#include "model/error.hpp"

namespace banyan {

namespace {

struct Group {
  explicit Group(int ranks) : size(ranks), parts(std::size_t(ranks)), sums(std::size_t(ranks)), sync(ranks) {}
  const int size;
  std::vector<std::span<float>> parts;  // each rank's values, this call
  std::vector<std::vector<float>> sums;  // each rank's chunk of the sum, this call
  std::barrier<> sync;
};

class LocalRank final : public Collective {
 public:
  LocalRank(std::shared_ptr<Group> group, int rank) : group_(std::move(group)), rank_(rank) {}

  void all_reduce_sum(std::span<float> values) override {
    const auto start = std::chrono::steady_clock::now();
    Group& g = *group_;
    g.parts[std::size_t(rank_)] = values;
    g.sync.arrive_and_wait();  // every rank's values are there, and every rank has read the last call's sums
    for (const auto& p : g.parts)
      if (p.size() != values.size())
        throw Error("tensor shards all-reduced " + std::to_string(p.size()) + " and " + std::to_string(values.size()) +
                    " values at once");
    const std::size_t begin = values.size() * std::size_t(rank_) / std::size_t(g.size);
    const std::size_t end = values.size() * std::size_t(rank_ + 1) / std::size_t(g.size);
    std::vector<float>& mine = g.sums[std::size_t(rank_)];
    mine.assign(g.parts[0].begin() + long(begin), g.parts[0].begin() + long(end));
    for (int r = 1; r < g.size; ++r)
      for (std::size_t i = begin; i < end; ++i) mine[i - begin] += g.parts[std::size_t(r)][i];
    g.sync.arrive_and_wait();  // every chunk of the sum is there
    auto out = values.begin();
    for (const auto& chunk : g.sums) out = std::copy(chunk.begin(), chunk.end(), out);
    std::lock_guard lock(stats_mutex_);
    ++stats_.calls;
    stats_.bytes += values.size() * sizeof(float);
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  CollectiveStats stats() const override {
    std::lock_guard lock(stats_mutex_);
    return stats_;
  }

 private:
  std::shared_ptr<Group> group_;
  int rank_;
  mutable std::mutex stats_mutex_;
  CollectiveStats stats_;
};

}  // namespace

std::vector<std::shared_ptr<Collective>> local_all_reduce(int size) {
  if (size < 1) throw Error("an all-reduce needs at least one rank");
  auto group = std::make_shared<Group>(size);
  std::vector<std::shared_ptr<Collective>> ranks;
  for (int r = 0; r < size; ++r) ranks.push_back(std::make_shared<LocalRank>(group, r));
  return ranks;
}

}  // namespace banyan
