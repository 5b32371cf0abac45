#pragma once
// Turning logits into the next token: greedy, or sampling with temperature, top-k and top-p
// from a seeded generator, so the same seed always gives the same text.
#include <cstdint>
#include <span>
#include <vector>

namespace banyan {

struct SamplingParams {
  float temperature = 0.0f;  // 0 means greedy
  int top_k = 0;             // 0 means no limit
  float top_p = 1.0f;
  std::uint64_t seed = 0;

  bool greedy() const { return temperature <= 0.0f; }
};

// Index of the largest logit; ties go to the lowest index.
std::int32_t argmax(std::span<const float> logits);

// The distribution sampling draws from: softmax(logits / temperature), restricted to the top_k
// most likely tokens and then to the smallest set whose mass reaches top_p, renormalised.
// Tokens outside get probability 0. For greedy params, all mass is on the argmax.
void sampling_distribution(std::span<const float> logits, const SamplingParams& params, std::vector<float>& probs);
// The same from a row's best tokens alone (best first, ties to the lower token, with their
// logits), which is all sampling looks at when params.top_k is 1 to best_tokens.size().
// `vocab` is the row's length.
void sampling_distribution(std::span<const std::int32_t> best_tokens, std::span<const float> best_logits, int vocab,
                           const SamplingParams& params, std::vector<float>& probs);

// Sampling from the nucleus of the whole vocabulary (top_k 0, top_p < 1) knowing only a row's
// best tokens: their logits (best first) and the log of the whole row's weight at the
// temperature, log_total = log sum_t exp((logit_t - best) / temperature). nucleus_size is how
// many of them the nucleus keeps, 0 when it reaches beyond them (the whole row is needed);
// nucleus_distribution is sampling_distribution's nucleus when it lies within them.
std::size_t nucleus_size(std::span<const float> best_logits, double log_total, const SamplingParams& params);
void nucleus_distribution(std::span<const std::int32_t> best_tokens, std::span<const float> best_logits, double log_total,
                          int vocab, const SamplingParams& params, std::vector<float>& probs);

// A small, portable generator (splitmix64-seeded xoshiro256**): the same seed gives the same
// numbers on every platform, unlike the std distributions.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  Rng() : Rng(0) {}
  std::uint64_t next();
  double uniform();  // in [0, 1)

  // Its state, for inspectors that copy it: a request's draws travel to an SSM's actor and back.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, Rng& x) {
    return f(x.s_[0], x.s_[1], x.s_[2], x.s_[3]);
  }

 private:
  std::uint64_t s_[4];
};

// Draws an index from a (not necessarily normalised) distribution.
std::int32_t sample_from(std::span<const float> probs, Rng& rng);

// The next token: the argmax for greedy params, else a draw from sampling_distribution.
std::int32_t sample_token(std::span<const float> logits, const SamplingParams& params, Rng& rng);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  std::int32_t next(std::span<const float> logits);
  const SamplingParams& params() const { return params_; }
  Rng& rng() { return rng_; }

 private:
  SamplingParams params_;
  Rng rng_;
};

}  // namespace banyan
