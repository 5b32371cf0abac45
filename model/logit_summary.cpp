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

void summarise_row(std::span<const float> row, int k, float temperature, std::span<float> out) {
  const std::vector<std::int32_t> best = best_tokens(row, k);
  for (int i = 0; i < k; ++i) {
    out[std::size_t(i)] = row[std::size_t(best[std::size_t(i)])];
    out[std::size_t(k + i)] = float(best[std::size_t(i)]);
  }
  const float max = row[std::size_t(best.front())];
  const auto log_total = [&](double t) {
    double total = 0;
    for (float v : row) total += std::exp((double(v) - double(max)) / t);
    return std::log(total);
  };
  out[std::size_t(2 * k)] = k == 1 ? std::numeric_limits<float>::quiet_NaN() : float(double(max) + log_total(1.0));
  out[std::size_t(2 * k + 1)] = temperature > 0 ? float(log_total(temperature)) : std::numeric_limits<float>::quiet_NaN();
}

}  // namespace

bool samples_nucleus(const SamplingParams& params) { return !params.greedy() && params.top_k <= 0 && params.top_p < 1.0f; }

void SummaryWidth::need(const SamplingParams& params, int beams) {
  const int k = params.greedy()                       ? std::max(beams, 1)
                : nucleus_ && samples_nucleus(params) ? std::min(kMaxSummaryTokens, vocab_)
                                                      : params.top_k;
  k_ = k >= 1 && k <= std::min(kMaxSummaryTokens, vocab_) && k_ > 0 ? std::max(k_, k) : 0;
}

void summarise_logits(std::span<const float> rows, int vocab, int k, std::span<const float> temperatures,
                      std::span<float> out) {
  check_k(k, vocab);
  const std::size_t n = rows.size() / std::size_t(vocab), width = std::size_t(summary_width(k));
  if (rows.size() != n * std::size_t(vocab) || out.size() != n * width || (!temperatures.empty() && temperatures.size() != n))
    throw Error("summarise_logits: " + std::to_string(rows.size()) + " logits, " + std::to_string(temperatures.size()) +
                " temperatures and room for " + std::to_string(out.size()) + " summary values do not make whole rows");
  for (std::size_t r = 0; r < n; ++r)
    summarise_row(rows.subspan(r * std::size_t(vocab), std::size_t(vocab)), k, temperatures.empty() ? 0.0f : temperatures[r],
                  out.subspan(r * width, width));
}

void summarise_logits(std::span<const float> rows, int vocab, int k, std::span<float> out) {
  summarise_logits(rows, vocab, k, {}, out);
}

bool nucleus_beyond_summary(std::span<const float> summary, int k, float temperature, float top_p) {
  return nucleus_size(summary.first(std::size_t(k)), double(summary[std::size_t(2 * k + 1)]),
                      {temperature, 0, top_p, 0}) == 0;
}

LogitRows::LogitRows(std::span<const float> values, int vocab, int summary_k, std::span<const float> nucleus_temperature,
                     std::span<const float> nucleus_top_p)
    : values_(values), vocab_(vocab), k_(summary_k), width_(std::size_t(summary_k > 0 ? summary_width(summary_k) : vocab)) {
  if (summary_k > 0) check_k(summary_k, vocab);
  if (nucleus_top_p.size() != nucleus_temperature.size())
    throw Error(std::to_string(nucleus_temperature.size()) + " nucleus temperatures for " +
                std::to_string(nucleus_top_p.size()) + " top_p values");
  if (!summarised() || nucleus_temperature.empty()) {
    if (values.size() % width_ != 0) throw Error(std::to_string(values.size()) + " values are not whole rows of " + std::to_string(width_));
    rows_ = values.size() / width_;
    return;
  }
  rows_ = nucleus_temperature.size();
  std::size_t end = rows_ * width_, whole = 0;
  if (values.size() < end)
    throw Error(std::to_string(values.size()) + " values are not " + std::to_string(rows_) + " summaries of " + std::to_string(width_));
  whole_at_.assign(rows_, -1);
  for (std::size_t i = 0; i < rows_; ++i)
    if (nucleus_temperature[i] > 0 && nucleus_beyond_summary(stored(i), k_, nucleus_temperature[i], nucleus_top_p[i])) {
      whole_at_[i] = std::ptrdiff_t(end);
      end += std::size_t(vocab);
      ++whole;
    }
  if (values.size() != end)
    throw Error(std::to_string(values.size()) + " values are not " + std::to_string(rows_) + " summaries of " +
                std::to_string(width_) + " and the " + std::to_string(whole) + " whole rows of the nuclei beyond them");
}

std::span<const float> LogitRows::row(std::size_t i) const {
  if (!summarised()) return stored(i);
  if (!whole_at_.empty() && whole_at_[i] >= 0) return values_.subspan(std::size_t(whole_at_[i]), std::size_t(vocab_));
  throw Error("the logits were summarised where they were computed: whole rows are not here");
}

std::int32_t LogitRows::best(std::size_t i) const {
  return summarised() ? std::int32_t(values_[i * width_ + std::size_t(k_)]) : argmax(row(i));
}

TopLogits LogitRows::top(std::size_t i, int k) const {
  std::vector<float> own;
  std::span<const float> s;
  int stored_k = k_;
  if (summarised()) {
    if (k > k_) throw Error("a summary of " + std::to_string(k_) + " tokens cannot give the best " + std::to_string(k));
    s = stored(i);
  } else {
    own.resize(std::size_t(summary_width(k)));
    summarise_logits(row(i), vocab_, k, own);
    s = own;
    stored_k = k;
  }
  TopLogits t;
  for (int j = 0; j < k; ++j) {
    t.logits.push_back(s[std::size_t(j)]);
    t.tokens.push_back(std::int32_t(s[std::size_t(stored_k + j)]));
  }
  t.log_z = s[std::size_t(2 * stored_k)];
  return t;
}

void LogitRows::distribution(std::size_t i, const SamplingParams& params, std::vector<float>& probs) const {
  if (!summarised() || (!whole_at_.empty() && whole_at_[i] >= 0)) return sampling_distribution(row(i), params, probs);
  if (samples_nucleus(params)) {
    const TopLogits t = top(i, k_);
    return nucleus_distribution(t.tokens, t.logits, double(stored(i)[std::size_t(2 * k_ + 1)]), vocab_, params, probs);
  }
  const TopLogits t = top(i, params.greedy() ? 1 : std::min(k_, std::max(params.top_k, 1)));
  sampling_distribution(t.tokens, t.logits, vocab_, params, probs);
}

std::int32_t LogitRows::sample(std::size_t i, const SamplingParams& params, Rng& rng) const {
  if (params.greedy()) return best(i);
  thread_local std::vector<float> probs;
  distribution(i, params, probs);
  return sample_from(probs, rng);
}

}  // namespace banyan
