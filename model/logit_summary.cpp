#include "model/logit_summary.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "model/error.hpp"
#include "model/sampler.hpp"

namespace banyan {

namespace {

void check_k(int k, int vocab) {
  if (k < 1 || k > kMaxSummaryTokens || k > vocab)
    throw Error("a logit summary keeps 1 to " + std::to_string(std::min(kMaxSummaryTokens, vocab)) + " tokens, not " +
                std::to_string(k));
}

// The k best tokens, best first: a row is scanned once, and only a logit above the k-th moves
// anything. Equal logits keep the earlier (lower) token ahead, as argmax does.
std::vector<std::int32_t> best_tokens(std::span<const float> row, int k) {
  if (k == 1) return {argmax(row)};  // the same choice by a plain max scan, in 60% of the time
  std::vector<std::int32_t> best;
  best.reserve(std::size_t(k) + 1);
  for (std::int32_t t = 0; t < std::int32_t(row.size()); ++t) {
    const float v = row[std::size_t(t)];
    if (int(best.size()) == k && !(v > row[std::size_t(best.back())])) continue;
    auto at = std::find_if(best.begin(), best.end(), [&](std::int32_t b) { return v > row[std::size_t(b)]; });
    best.insert(at, t);
    if (int(best.size()) > k) best.pop_back();
  }
  return best;
}

void summarise_row(std::span<const float> row, int k, std::span<float> out) {
  const std::vector<std::int32_t> best = best_tokens(row, k);
  for (int i = 0; i < k; ++i) {
    out[std::size_t(i)] = row[std::size_t(best[std::size_t(i)])];
    out[std::size_t(k + i)] = float(best[std::size_t(i)]);
  }
  out[std::size_t(2 * k)] = std::numeric_limits<float>::quiet_NaN();
  if (k == 1) return;
  const float max = row[std::size_t(best.front())];
  double total = 0;
  for (float v : row) total += std::exp(double(v) - double(max));
  out[std::size_t(2 * k)] = float(double(max) + std::log(total));
}

}  // namespace

void SummaryWidth::need(const SamplingParams& params, int beams) {
  const int k = params.greedy() ? std::max(beams, 1) : params.top_k;
  k_ = k >= 1 && k <= std::min(kMaxSummaryTokens, vocab_) && k_ > 0 ? std::max(k_, k) : 0;
}

void summarise_logits(std::span<const float> rows, int vocab, int k, std::span<float> out) {
  check_k(k, vocab);
  const std::size_t n = rows.size() / std::size_t(vocab), width = std::size_t(summary_width(k));
  if (rows.size() != n * std::size_t(vocab) || out.size() != n * width)
    throw Error("summarise_logits: " + std::to_string(rows.size()) + " logits and room for " + std::to_string(out.size()) +
                " summary values do not make whole rows");
  for (std::size_t r = 0; r < n; ++r)
    summarise_row(rows.subspan(r * std::size_t(vocab), std::size_t(vocab)), k, out.subspan(r * width, width));
}

LogitRows::LogitRows(std::span<const float> values, int vocab, int summary_k)
    : values_(values), vocab_(vocab), k_(summary_k), width_(std::size_t(summary_k > 0 ? summary_width(summary_k) : vocab)) {
  if (summary_k > 0) check_k(summary_k, vocab);
  if (values.size() % width_ != 0)
    throw Error(std::to_string(values.size()) + " values are not whole rows of " + std::to_string(width_));
}

std::span<const float> LogitRows::row(std::size_t i) const {
  if (summarised()) throw Error("the logits were summarised where they were computed: whole rows are not here");
  return values_.subspan(i * width_, width_);
}

std::int32_t LogitRows::best(std::size_t i) const {
  return summarised() ? std::int32_t(values_[i * width_ + std::size_t(k_)]) : argmax(row(i));
}

TopLogits LogitRows::top(std::size_t i, int k) const {
  std::vector<float> own;
  std::span<const float> s;
  int stored = k_;
  if (summarised()) {
    if (k > k_) throw Error("a summary of " + std::to_string(k_) + " tokens cannot give the best " + std::to_string(k));
    s = values_.subspan(i * width_, width_);
  } else {
    own.resize(std::size_t(summary_width(k)));
    summarise_logits(row(i), vocab_, k, own);
    s = own;
    stored = k;
  }
  TopLogits t;
  for (int j = 0; j < k; ++j) {
    t.logits.push_back(s[std::size_t(j)]);
    t.tokens.push_back(std::int32_t(s[std::size_t(stored + j)]));
  }
  t.log_z = s[std::size_t(2 * stored)];
  return t;
}

void LogitRows::distribution(std::size_t i, const SamplingParams& params, std::vector<float>& probs) const {
  if (!summarised()) return sampling_distribution(row(i), params, probs);
  const TopLogits t = top(i, params.greedy() ? 1 : std::min(k_, std::max(params.top_k, 1)));
  sampling_distribution(t.tokens, t.logits, vocab_, params, probs);
}

std::int32_t LogitRows::sample(std::size_t i, const SamplingParams& params, Rng& rng) const {
  if (params.greedy()) return best(i);
  if (!summarised()) return sample_token(row(i), params, rng);
  thread_local std::vector<float> probs;
  distribution(i, params, probs);
  return sample_from(probs, rng);
}

}  // namespace banyan
