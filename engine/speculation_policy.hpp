#pragma once
// How many tokens a step speculates. Speculation wins while the LLM's pass is memory-bound,
// where verifying a tree costs about what one token costs; as more requests decode together the
// pass turns compute-bound and each speculated token costs more: on 2 CPU cores a smaller tree
// then wins over both the full tree and none (bench specinfer, demo-160m at batch 8: a 4-token
// chain 0.90x incremental, a 1-token one 1.19x). Where the best size lies depends on the device,
// the models and how often the SSMs guess right, so it is measured. For each number of decoding
// requests (in buckets 1, 2-3, 4-7, ...) the policy keeps, for each tree size of a ladder (0 —
// incremental decoding —, 1, 2, 4, ... tokens up to the most the SSMs propose), the tokens committed and
// the seconds taken by its last few steps that only decoded; it uses the size that measured best
// (incremental only when clearly faster), and now and then tries a neighbouring size for a few
// steps, so that a change is seen: one after another while they gain, less and less often while
// they keep the choice. A new bucket measures the whole tree, then incremental decoding, then
// the sizes between from the faster end while they gain; or, with a measured bucket near it,
// starts at that one's choice, until its own tries move it.
// The engine does not report steps that switched between speculating and not (their cost is
// the SSMs catching up, not speculation's).
// Every size gives the same output (greedy) or the same distribution (sampling).
#include <array>
#include <map>
#include <vector>

namespace banyan {

class SpeculationPolicy {
 public:
  // `max_tree_tokens`: the most tokens a request's tree adds in a step (0: no speculation);
  // `smallest`: the smallest tree tried (with several SSMs, a token from each).
  explicit SpeculationPolicy(int max_tree_tokens, int smallest = 1);
  // The most tokens each request's tree adds in the next step, with `decoding` requests
  // decoding; 0: the step decodes incrementally.
  int tree_tokens(int decoding);
  // What a step that only decoded did with trees of up to `tree_tokens` tokens: `committed`
  // tokens in `seconds`. Steps that switched between speculating and not are not reported.
  void record(int decoding, int tree_tokens, long long committed, double seconds);

 private:
  // A tree size's last kWindow measured steps.
  static constexpr int kWindow = 8;
  struct Rate {
    std::array<double, kWindow> tokens{}, seconds{};
    long long samples = 0;  // measured in all; the window holds the last min(samples, kWindow)
    void add(double committed, double step_seconds);
    bool measured() const;
    // Mean tokens per step over the median step's seconds: a step's tokens vary from 1 to the
    // tree's depth + 1, while its time is about the same from step to step but for the odd
    // one that the machine holds up (a 100 ms step among 2 ms ones, seen on 2 cores), which
    // must not decide the mode for hundreds of steps.
    double tokens_per_s() const;
  };
  struct Bucket {
    std::vector<Rate> sizes;  // by rung of the ladder
    int choice = 0;           // the rung in use
    int trying = -1;          // the rung being tried, or -1
    long long steps = 0;
    long long try_began = 0;  // the try's first step
    long long interval = 0;   // steps from a try that kept the choice to the next
    long long try_at = 0;     // the step the next try begins
    bool try_smaller = true;  // which neighbour the next try takes
    bool warming_up = false;  // measuring the whole tree, then incremental decoding
  };
  static int bucket_key(int decoding);
  Bucket& bucket(int decoding);
  int rung_of(int tree_tokens) const;
  double worth(const Bucket& b, int rung) const;  // measured rate, speculation's favoured
  int best(const Bucket& b) const;                // the best measured rung (the choice on a tie)
  void start_try(Bucket& b, long long step);
  void end_try(Bucket& b, long long step);
  const Bucket* nearest_measured(int key) const;  // within a few buckets; nullptr if none

  std::vector<int> ladder_;  // tree sizes: 0, smallest, 2 smallest, 4 smallest, ..., the most
  std::map<int, Bucket> buckets_;
};

}  // namespace banyan
