#pragma once
// Whether a step speculates. Speculation wins while the LLM's pass is memory-bound, where
// verifying a tree costs about what one token costs, and loses once many requests decode
// together and the pass is compute-bound (on 2 CPU cores from 2-4 requests on: bench specinfer
// measured 0.45-0.6x at batch 4 and 8). Where that point lies depends on the device, the models
// and how often the SSMs guess right, so it is measured: for each number of decoding requests
// (in buckets 1, 2-3, 4-7, ...) the policy keeps decayed sums of the tokens committed and the
// seconds taken by steps of each mode that only decoded, prefers speculating unless the
// incremental steps were clearly faster, and now and then tries the other mode for a few steps
// so that a change is seen (less and less often while the tries keep the choice). A bucket
// not measured yet follows a measured one near it, if any, until its tries have measured it.
// The engine does not report steps that switched modes (their cost is the SSMs catching up,
// not speculation's).
// Both modes give the same output (greedy) or the same distribution (sampling).
#include <map>

namespace banyan {

class SpeculationPolicy {
 public:
  // Whether the next step, with `decoding` requests decoding, speculates.
  bool speculate(int decoding);
  // What a step that only decoded, in the same mode as the step before it, did: `committed`
  // tokens in `seconds`.
  void record(int decoding, bool speculated, long long committed, double seconds);

 private:
  struct Rate {
    double tokens = 0, seconds = 0;  // decayed sums over the measured steps
    int samples = 0;
    double tokens_per_s() const { return seconds > 0 ? tokens / seconds : 0; }
  };
  struct Bucket {
    Rate modes[2];  // [incremental, speculative]
    long long steps = 0;
    bool choice = true;      // the mode last chosen (true: speculative)
    long long interval = 0;  // steps from one try of the other mode to the next
    long long try_at = 0;    // the step the next try begins
  };
  static int bucket(int decoding);
  static bool measured(const Bucket& b);             // both modes measured enough to compare
  static bool prefers_speculation(const Bucket& b);  // from its measurements
  const Bucket* nearest_measured(int bucket) const;  // within a few buckets; nullptr if none
  std::map<int, Bucket> buckets_;
};

}  // namespace banyan
