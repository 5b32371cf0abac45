#pragma once
// What the engine needs of a row of logits when it decodes greedily: the k largest logits with
// their tokens (largest first, ties to the lower token, as argmax breaks them) and the log of
// the softmax's normaliser, from which those tokens' log-probabilities follow. A backend forms it
// where the logits are (on a GPU only the summaries come back to the host), and a pipeline's
// last stage sends it instead of the rows: a row of LLaMA's 32000 logits is 125 KiB, its summary
// for greedy verification 12 bytes.
// A summary row is summary_width(k) floats: the k logits, the k tokens (exact in a float, the
// vocabulary being below 2^24), then the log-sum-exp; so it travels wherever logits travel.
// The log-sum-exp (a pass of exp over the whole row: on the CPU five times an argmax's time) is
// formed for k >= 2 only, where a beam search compares tokens' probabilities; a summary of one
// token is an argmax, and holds NaN there.
#include <cstdint>
#include <span>
#include <vector>

#include "model/sampler.hpp"

namespace banyan {

inline constexpr int kMaxSummaryTokens = 64;
constexpr int summary_width(int k) { return 2 * k + 1; }

struct TopLogits {
  std::vector<std::int32_t> tokens;  // best first
  std::vector<float> logits;
  float log_z = 0;  // log of the sum of exp(logit) over the whole row; NaN for one token
  double log_prob(std::size_t i) const { return double(logits[i]) - double(log_z); }
};

// The summary width (ForwardBatch::summary_k) a forward pass's rows need together: each row
// decoding with `params` needs its best `beams` tokens when greedy (1 to verify, a beam search's
// width) and its top_k when sampling; sampling from the whole vocabulary, or beyond
// kMaxSummaryTokens or the vocabulary, needs whole rows (k() == 0).
class SummaryWidth {
 public:
  explicit SummaryWidth(int vocab) : vocab_(vocab) {}
  void need(const SamplingParams& params, int beams = 1);
  int k() const { return k_; }

 private:
  int vocab_, k_ = 1;
};

// Writes the summaries of `rows` (each `vocab` logits) to `out` (rows * summary_width(k)).
void summarise_logits(std::span<const float> rows, int vocab, int k, std::span<float> out);

// A forward pass's output as the engine reads it: rows of `vocab` logits, or (summary_k > 0)
// their summaries of summary_k tokens.
class LogitRows {
 public:
  LogitRows(std::span<const float> values, int vocab, int summary_k);
  std::size_t size() const { return values_.size() / width_; }
  bool summarised() const { return k_ > 0; }
  std::span<const float> row(std::size_t i) const;  // whole rows only
  std::int32_t best(std::size_t i) const;           // the argmax
  TopLogits top(std::size_t i, int k) const;        // k <= summary_k when summarised
  // Row i's sampling distribution (model/sampler.hpp) and a draw from it; from a summary when
  // its SummaryWidth fits in summary_k.
  void distribution(std::size_t i, const SamplingParams& params, std::vector<float>& probs) const;
  std::int32_t sample(std::size_t i, const SamplingParams& params, Rng& rng) const;

 private:
  std::span<const float> values_;
  int vocab_, k_;
  std::size_t width_;
};

}  // namespace banyan
