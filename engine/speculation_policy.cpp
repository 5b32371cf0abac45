#include "engine/speculation_policy.hpp"

#include <algorithm>
#include <bit>
#include <cstdlib>

namespace banyan {

namespace {
constexpr int kWarmSamples = 4;              // steps a size is measured before it is compared
constexpr double kIncrementalMargin = 1.15;  // incremental must be this much faster to be chosen
constexpr long long kFirstInterval = 64;     // steps before the first try after a choice;
constexpr long long kMaxInterval = 1024;     // doubled after each try that keeps it, up to this
constexpr int kTrySamples = 4;               // a try measures this many steps of its size...
constexpr long long kMaxTrySteps = 16;       // ...or ends after this many (steps that prefill are not measured)
constexpr int kInheritDistance = 2;          // buckets apart a measured one may decide for another
}  // namespace

SpeculationPolicy::SpeculationPolicy(int max_tree_tokens, int smallest) : ladder_{0} {
  for (int size = std::max(1, smallest); size < max_tree_tokens; size *= 2) ladder_.push_back(size);
  if (max_tree_tokens > 0) ladder_.push_back(max_tree_tokens);
}

int SpeculationPolicy::bucket_key(int decoding) { return int(std::bit_width(unsigned(decoding > 0 ? decoding : 1))); }

int SpeculationPolicy::rung_of(int tree_tokens) const {
  return int(std::find(ladder_.begin(), ladder_.end(), tree_tokens) - ladder_.begin());
}

bool SpeculationPolicy::Rate::measured() const { return samples >= kWarmSamples; }

double SpeculationPolicy::worth(const Bucket& b, int rung) const {
  return b.sizes[std::size_t(rung)].tokens_per_s() * (ladder_[std::size_t(rung)] > 0 ? kIncrementalMargin : 1.0);
}

int SpeculationPolicy::best(const Bucket& b) const {
  int best = b.choice;
  for (int r = 0; r < int(ladder_.size()); ++r)
    if (b.sizes[std::size_t(r)].measured() && (!b.sizes[std::size_t(best)].measured() || worth(b, r) > worth(b, best)))
      best = r;
  return best;
}

const SpeculationPolicy::Bucket* SpeculationPolicy::nearest_measured(int key) const {
  const Bucket* nearest = nullptr;
  int distance = kInheritDistance + 1;
  for (const auto& [k, b] : buckets_)
    if (b.sizes[std::size_t(b.choice)].measured() && std::abs(k - key) < distance) nearest = &b, distance = std::abs(k - key);
  return nearest;
}

SpeculationPolicy::Bucket& SpeculationPolicy::bucket(int decoding) {
  const int key = bucket_key(decoding);
  if (auto it = buckets_.find(key); it != buckets_.end()) return it->second;
  Bucket b;
  b.sizes.resize(ladder_.size());
  b.interval = kFirstInterval;
  if (const Bucket* near = nearest_measured(key)) {
    // A batch size not measured yet starts where a measured one near it is, and its own tries
    // move it: a warm-up of its own would pay the SSMs' catch-up at every new batch size.
    b.choice = near->choice;
    b.try_at = kFirstInterval;
  } else {
    b.choice = int(ladder_.size()) - 1;
    b.warming_up = true;
  }
  return buckets_.emplace(key, std::move(b)).first->second;
}

void SpeculationPolicy::start_try(Bucket& b, long long step) {
  const int last = int(ladder_.size()) - 1;
  if (b.warming_up)
    b.trying = 0;  // whether to speculate at all is the biggest question: the whole tree against none
  else
    b.trying = (b.try_smaller && b.choice > 0) || b.choice == last ? b.choice - 1 : b.choice + 1;
  b.try_began = step;
  // Measured afresh: older steps of that size may be from another load on the machine, and
  // the choice's own window is recent.
  b.sizes[std::size_t(b.trying)] = Rate();
}

void SpeculationPolicy::end_try(Bucket& b, long long step) {
  const int before = b.choice;
  b.choice = best(b);
  b.trying = -1;
  if (b.warming_up) {
    // Then the sizes between, from the faster end, at once.
    b.warming_up = false;
    b.try_smaller = b.choice > 0;
    b.try_at = step;
  } else if (b.choice != before) {
    // A gain: the next rung the same way is tried at once.
    b.try_smaller = b.choice < before;
    b.interval = kFirstInterval;
    b.try_at = step;
  } else {
    // A try costs more than its steps (returning to speculation makes the SSMs catch up on
    // every token they skipped), so while the choice holds the next comes twice as late.
    b.try_smaller = !b.try_smaller;
    b.try_at = step + b.interval;
    b.interval = std::min(2 * b.interval, kMaxInterval);
  }
}

int SpeculationPolicy::tree_tokens(int decoding) {
  if (ladder_.size() == 1) return 0;
  Bucket& b = bucket(decoding);
  const long long step = b.steps++;
  if (b.trying >= 0) {
    const Rate& tried = b.sizes[std::size_t(b.trying)];
    if (tried.samples < kTrySamples && step - b.try_began < kMaxTrySteps) return ladder_[std::size_t(b.trying)];
    end_try(b, step);
  }
  if (b.sizes[std::size_t(b.choice)].measured() && step >= b.try_at) {
    start_try(b, step);
    return ladder_[std::size_t(b.trying)];
  }
  return ladder_[std::size_t(b.choice)];
}

void SpeculationPolicy::record(int decoding, int tree_tokens, long long committed, double seconds) {
  const int rung = rung_of(tree_tokens);
  if (seconds <= 0 || rung == int(ladder_.size())) return;
  bucket(decoding).sizes[std::size_t(rung)].add(double(committed), seconds);
}

void SpeculationPolicy::Rate::add(double committed, double step_seconds) {
  const auto at = std::size_t(samples++ % kWindow);
  tokens[at] = committed;
  seconds[at] = step_seconds;
}

double SpeculationPolicy::Rate::tokens_per_s() const {
  const auto n = std::size_t(std::min<long long>(samples, kWindow));
  if (n == 0) return 0;
  std::array<double, kWindow> s = seconds;
  std::nth_element(s.begin(), s.begin() + n / 2, s.begin() + n);
  double committed = 0;
  for (std::size_t i = 0; i < n; ++i) committed += tokens[i];
  return committed / double(n) / s[n / 2];
}

}  // namespace banyan
