#pragma once
// Whether a step speculates. Speculation wins while the LLM's pass is memory-bound, where
// verifying a tree costs about what one token costs, and loses once many requests decode
// together and the pass is compute-bound (on 2 CPU cores from 2-4 requests on: bench specinfer
// measured 0.45-0.6x at batch 4 and 8). Where that point lies depends on the device, the models
// and how often the SSMs guess right, so it is measured: for each number of decoding requests
// (in buckets 1, 2-3, 4-7, ...) the policy keeps the tokens committed and the seconds taken by
// the last few steps of each mode that only decoded, prefers speculating unless the
// incremental steps were clearly faster, and now and then tries the other mode for a few steps
// so that a change is seen (less and less often while the tries keep the choice). A bucket
// not measured yet follows a measured one near it, if any, until its tries have measured it.
// The engine does not report steps that switched modes (their cost is the SSMs catching up,
// not speculation's).
// Both modes give the same output (greedy) or the same distribution (sampling).
#include <array>
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
  // A mode's last kWindow measured steps.
  static constexpr int kWindow = 8;
  struct Rate {
    std::array<double, kWindow> tokens{}, seconds{};
    long long samples = 0;  // measured in all; the window holds the last min(samples, kWindow)
    void add(double committed, double step_seconds);
    // Mean tokens per step over the median step's seconds: a step's tokens vary from 1 to the
    // tree's depth + 1, while its time is about the same from step to step but for the odd
    // one that the machine holds up (a 100 ms step among 2 ms ones, seen on 2 cores), which
    // must not decide the mode for hundreds of steps.
    double tokens_per_s() const;
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
