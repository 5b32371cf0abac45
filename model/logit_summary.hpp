#pragma once
// What the engine needs of a row of logits when it decodes greedily: the k largest logits with
// their tokens (largest first, ties to the lower token, as argmax breaks them) and the log of
// the softmax's normaliser, from which those tokens' log-probabilities follow. A backend forms it
// where the logits are (on a GPU only the summaries come back to the host), and a pipeline's
// last stage sends it instead of the rows: a row of LLaMA's 32000 logits is 125 KiB, its summary
// for greedy verification 16 bytes.
// A summary row is summary_width(k) floats: the k logits, the k tokens (exact in a float, the
// vocabulary being below 2^24), the log-sum-exp, then for a row sampled from the nucleus of the
// whole vocabulary (top_k 0, top_p < 1) the log of its weight at its temperature T,
// log sum_t exp((logit_t - best) / T); so it travels wherever logits travel.
// The log-sum-exp (a pass of exp over the whole row: on the CPU five times an argmax's time) is
// formed for k >= 2 only, where a beam search compares tokens' probabilities; a summary of one
// token is an argmax, and holds NaN there. The weight at T is formed for the rows given a
// temperature only (NaN otherwise): with it, a nucleus within the summary's tokens is sampled
// from the summary alone (nucleus_size); a pass sends the rows whose nucleus reaches beyond their
// summary whole, after the summaries (nucleus_beyond_summary), where LogitRows finds them.
#include <cstdint>
#include <span>
#include <vector>

#include "model/sampler.hpp"

namespace banyan {

inline constexpr int kMaxSummaryTokens = 64;
constexpr int summary_width(int k) { return 2 * k + 2; }

struct TopLogits {
  std::vector<std::int32_t> tokens;  // best first
  std::vector<float> logits;
  float log_z = 0;  // log of the sum of exp(logit) over the whole row; NaN for one token
  double log_prob(std::size_t i) const { return double(logits[i]) - double(log_z); }
};

// Whether `params` sample from the nucleus of the whole vocabulary (top_k 0, top_p < 1).
bool samples_nucleus(const SamplingParams& params);

// The summary width (ForwardBatch::summary_k) a forward pass's rows need together: each row
// decoding with `params` needs its best `beams` tokens when greedy (1 to verify, a beam search's
// width) and its top_k when sampling; with `nucleus`, a row sampling from the whole vocabulary's
// nucleus needs kMaxSummaryTokens (and its weight at its temperature: ForwardBatch::nucleus_*);
// sampling from the whole vocabulary otherwise, or beyond kMaxSummaryTokens or the vocabulary,
// needs whole rows (k() == 0).
class SummaryWidth {
 public:
  explicit SummaryWidth(int vocab, bool nucleus = false) : vocab_(vocab), nucleus_(nucleus) {}
  void need(const SamplingParams& params, int beams = 1);
  int k() const { return k_; }

 private:
  int vocab_;
  bool nucleus_;
  int k_ = 1;
};

// Writes the summaries of `rows` (each `vocab` logits) to `out` (rows * summary_width(k)).
// `temperatures`: one per row (> 0 for a row sampled from its nucleus, whose weight at that
// temperature the summary then holds; 0 otherwise), or none.
void summarise_logits(std::span<const float> rows, int vocab, int k, std::span<const float> temperatures,
                      std::span<float> out);
void summarise_logits(std::span<const float> rows, int vocab, int k, std::span<float> out);

// Whether the nucleus (top_p) of a row sampled at `temperature` (> 0) reaches beyond the tokens
// of its summary `summary` (summary_width(k) values): then a pass sends the row whole as well.
bool nucleus_beyond_summary(std::span<const float> summary, int k, float temperature, float top_p);

// A forward pass's output as the engine reads it: rows of `vocab` logits, or (summary_k > 0)
// their summaries of summary_k tokens, followed by the whole rows of those sampled from a
// nucleus beyond their summary (`nucleus_temperature` and `nucleus_top_p`: each row's, as the
// pass was given them in ForwardBatch, or none). Throws Error when the values do not make those.
class LogitRows {
 public:
  LogitRows(std::span<const float> values, int vocab, int summary_k, std::span<const float> nucleus_temperature = {},
            std::span<const float> nucleus_top_p = {});
  std::size_t size() const { return rows_; }
  bool summarised() const { return k_ > 0; }
  std::span<const float> row(std::size_t i) const;  // whole rows only
  std::int32_t best(std::size_t i) const;           // the argmax
  TopLogits top(std::size_t i, int k) const;        // k <= summary_k when summarised
  // Row i's sampling distribution (model/sampler.hpp) and a draw from it; from a summary when
  // its SummaryWidth fits in summary_k.
  void distribution(std::size_t i, const SamplingParams& params, std::vector<float>& probs) const;
  std::int32_t sample(std::size_t i, const SamplingParams& params, Rng& rng) const;

 private:
  // Row i's summary (summarised) or whole row.
  std::span<const float> stored(std::size_t i) const { return values_.subspan(i * width_, width_); }

  std::span<const float> values_;
  int vocab_, k_;
  std::size_t width_, rows_;
  std::vector<std::ptrdiff_t> whole_at_;  // summarised: where row i's whole row follows, or -1
};

}  // namespace banyan
