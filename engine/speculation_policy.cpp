#include "engine/speculation_policy.hpp"

#include <algorithm>
#include <bit>
#include <cstdlib>

namespace banyan {

namespace {
constexpr int kWarmSamples = 4;              // steps of each mode measured before choosing
constexpr double kIncrementalMargin = 1.15;  // incremental must be this much faster to be chosen
constexpr long long kFirstInterval = 128;    // steps before the first try of the mode not chosen;
constexpr long long kMaxInterval = 1024;     // doubled after each try that keeps the choice, up to this
constexpr long long kExploreSteps = 5;       // each try this long (its first step switches, unmeasured)
constexpr int kInheritDistance = 2;          // buckets apart a measured one may decide for another
}  // namespace

int SpeculationPolicy::bucket(int decoding) { return int(std::bit_width(unsigned(decoding > 0 ? decoding : 1))); }

bool SpeculationPolicy::measured(const Bucket& b) {
  return b.modes[0].samples >= kWarmSamples && b.modes[1].samples >= kWarmSamples;
}

bool SpeculationPolicy::prefers_speculation(const Bucket& b) {
  return b.modes[0].tokens_per_s() < kIncrementalMargin * b.modes[1].tokens_per_s();
}

const SpeculationPolicy::Bucket* SpeculationPolicy::nearest_measured(int key) const {
  const Bucket* nearest = nullptr;
  int distance = kInheritDistance + 1;
  for (const auto& [k, b] : buckets_)
    if (measured(b) && std::abs(k - key) < distance) nearest = &b, distance = std::abs(k - key);
  return nearest;
}

bool SpeculationPolicy::speculate(int decoding) {
  const int key = bucket(decoding);
  Bucket& b = buckets_[key];
  const long long step = b.steps++;
  bool choice;
  if (measured(b)) {
    choice = prefers_speculation(b);
  } else if (const Bucket* near = nearest_measured(key)) {
    // A batch size not measured yet follows a measured one near it until its own tries have
    // measured it: a warm-up of its own would pay the SSMs' catch-up at every new batch size.
    choice = prefers_speculation(*near);
  } else {
    return b.modes[1].samples < kWarmSamples;  // warm-up: speculation first, then incremental
  }
  if (b.interval == 0 || choice != b.choice) {  // a first choice, or a try that won: tries come often again
    b.choice = choice;
    b.interval = kFirstInterval;
    b.try_at = step + kFirstInterval;
  }
  if (step < b.try_at) return choice;
  if (step < b.try_at + kExploreSteps) return !choice;
  // A try that kept the choice. Each try costs more than its steps (returning to speculation
  // makes the SSMs catch up on every token they skipped), so the next comes twice as late.
  b.interval = std::min(2 * b.interval, kMaxInterval);
  b.try_at = step + b.interval;
  return choice;
}

void SpeculationPolicy::record(int decoding, bool speculated, long long committed, double seconds) {
  if (seconds <= 0) return;
  buckets_[bucket(decoding)].modes[speculated ? 1 : 0].add(double(committed), seconds);
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
