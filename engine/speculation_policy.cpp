#include "engine/speculation_policy.hpp"

#include <bit>

namespace banyan {

namespace {
constexpr int kWarmSamples = 4;              // steps of each mode measured before choosing
constexpr double kIncrementalMargin = 1.15;  // incremental must be this much faster to be chosen
constexpr long long kExploreEvery = 128;     // steps between tries of the mode not chosen,
constexpr long long kExploreSteps = 5;       // each this long (its first step switches, unmeasured)
constexpr double kKeep = 0.875;              // of the past in the decayed sums, per measured step
}  // namespace

int SpeculationPolicy::bucket(int decoding) { return int(std::bit_width(unsigned(decoding > 0 ? decoding : 1))); }

bool SpeculationPolicy::speculate(int decoding) {
  Bucket& b = buckets_[bucket(decoding)];
  ++b.steps;
  const Rate &incremental = b.modes[0], &speculative = b.modes[1];
  if (speculative.samples < kWarmSamples) return true;
  if (incremental.samples < kWarmSamples) return false;
  const bool choice = incremental.tokens_per_s() < kIncrementalMargin * speculative.tokens_per_s();
  return b.steps % kExploreEvery < kExploreSteps ? !choice : choice;
}

void SpeculationPolicy::record(int decoding, bool speculated, long long committed, double seconds) {
  if (seconds <= 0) return;
  Rate& r = buckets_[bucket(decoding)].modes[speculated ? 1 : 0];
  // Sums, not an average of per-step rates: a step's tokens vary from 1 to the tree's depth + 1.
  r.tokens = kKeep * r.tokens + double(committed);
  r.seconds = kKeep * r.seconds + seconds;
  ++r.samples;
}

}  // namespace banyan
