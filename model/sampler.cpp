#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

namespace banyan {

std::int32_t argmax(std::span<const float> logits) {
  return std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

namespace {

// How many of the candidates (weights `p`, best first) the nucleus keeps: the smallest prefix
// whose share of `total` reaches top_p; 0 when the candidates given do not reach it.
std::size_t nucleus(std::span<const double> p, double total, float top_p) {
  double mass = 0;
  for (std::size_t i = 0; i < p.size(); ++i)
    if ((mass += p[i] / total) >= top_p) return i + 1;
  return 0;
}

// The nucleus of candidates that are all there is to sample from (the top k): the smallest
// prefix whose share of their mass reaches top_p; all of them for top_p 1 (or rounding short).
std::size_t kept_of(std::span<const double> p, float top_p) {
  const std::size_t reached = top_p < 1.0f ? nucleus(p, std::accumulate(p.begin(), p.end(), 0.0), top_p) : 0;
  return reached > 0 ? reached : p.size();
}

// probs[order[i]] = p[i] renormalised over the first `keep` candidates (weights
// exp((logit - max) / temperature), best first).
void normalise(std::span<const std::int32_t> order, std::span<const double> p, std::size_t keep,
               std::vector<float>& probs) {
  const double kept = std::accumulate(p.begin(), p.begin() + std::ptrdiff_t(keep), 0.0);
  for (std::size_t i = 0; i < keep; ++i) probs[std::size_t(order[i])] = float(p[i] / kept);
}

// Weights exp((logit - best) / temperature) of a row's best tokens, best first.
std::vector<double> best_weights(std::span<const float> best_logits, float temperature) {
  std::vector<double> p(best_logits.size());
  for (std::size_t i = 0; i < p.size(); ++i)
    p[i] = std::exp((double(best_logits[i]) - double(best_logits.front())) / temperature);
  return p;
}

}  // namespace

void sampling_distribution(std::span<const float> logits, const SamplingParams& params, std::vector<float>& probs) {
  const std::size_t n = logits.size();
  probs.assign(n, 0.0f);
  if (params.greedy()) {
    probs[std::size_t(argmax(logits))] = 1.0f;
    return;
  }
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  auto weight = [&](std::int32_t t) { return std::exp((double(logits[std::size_t(t)]) - max_logit) / params.temperature); };
  // Order candidates by logit (stable: ties keep the lower id first).
  std::vector<std::int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto by_logit = [&](std::int32_t a, std::int32_t b) {
    return logits[std::size_t(a)] > logits[std::size_t(b)] || (logits[std::size_t(a)] == logits[std::size_t(b)] && a < b);
  };
  std::vector<double> p;
  // A top_k of the whole vocabulary or more limits nothing: the nucleus is of the whole vocabulary.
  const bool whole_vocabulary = params.top_k <= 0 || std::size_t(params.top_k) >= n;
  if (whole_vocabulary && params.top_p < 1.0f) {
    // The nucleus of the whole vocabulary is usually a few dozen tokens: the best 64 are sorted
    // to the front and, while they do not hold top_p of the mass, four times as many, the next
    // ones chosen among the rest only: by a partial sort (a heap, which passes over most tokens
    // with one comparison) while few, by selection (nth_element, linear) and a sort of those
    // alone beyond 1024 (bench sampling: a nucleus of thousands 2.5x faster than partial sorts
    // of the whole order for each size; a full sort of 32000 logits takes 2.4 ms).
    double total = 0;
    for (std::size_t t = 0; t < n; ++t) total += weight(std::int32_t(t));
    for (std::size_t m = std::min<std::size_t>(n, 64), sorted = 0;; sorted = m, m = std::min(n, 4 * m)) {
      const auto from = order.begin() + std::ptrdiff_t(sorted), to = order.begin() + std::ptrdiff_t(m);
      if (m <= 1024) {
        std::partial_sort(from, to, order.end(), by_logit);
      } else {
        if (m < n) std::nth_element(from, to, order.end(), by_logit);
        std::sort(from, to, by_logit);
      }
      for (auto t = from; t != to; ++t) p.push_back(weight(*t));
      const std::size_t keep = nucleus(p, total, params.top_p);
      if (keep > 0 || m == n) return normalise(order, p, keep > 0 ? keep : m, probs);
    }
  }
  // The top k (all tokens for plain sampling, which needs no ordering).
  if (!whole_vocabulary) {
    const std::size_t k = std::size_t(params.top_k);
    std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(), by_logit);
    order.resize(k);
  }
  for (std::int32_t t : order) p.push_back(weight(t));
  normalise(order, p, kept_of(p, params.top_p), probs);
}

void sampling_distribution(std::span<const std::int32_t> best_tokens, std::span<const float> best_logits, int vocab,
                           const SamplingParams& params, std::vector<float>& probs) {
  if (params.greedy() ? best_tokens.empty() : params.top_k < 1 || std::size_t(params.top_k) > best_tokens.size())
    throw std::invalid_argument("sampling from a row's best " + std::to_string(best_tokens.size()) +
                                " tokens with top_k " + std::to_string(params.top_k));
  probs.assign(std::size_t(vocab), 0.0f);
  if (params.greedy()) {
    probs[std::size_t(best_tokens.front())] = 1.0f;
    return;
  }
  const std::vector<double> p = best_weights(best_logits.first(std::size_t(params.top_k)), params.temperature);
  normalise(best_tokens, p, kept_of(p, params.top_p), probs);
}

namespace {

// The best tokens' weights (best_weights) and how many of them the nucleus keeps (nucleus_size).
std::pair<std::vector<double>, std::size_t> best_nucleus(std::span<const float> best_logits, double log_total,
                                                         const SamplingParams& params) {
  if (params.greedy() || params.top_k > 0 || params.top_p >= 1.0f || best_logits.empty() || !std::isfinite(log_total))
    throw std::invalid_argument("nucleus_size: not a row sampled from the whole vocabulary's nucleus");
  std::vector<double> p = best_weights(best_logits, params.temperature);
  const std::size_t keep = nucleus(p, std::exp(log_total), params.top_p);
  return {std::move(p), keep};
}

}  // namespace

std::size_t nucleus_size(std::span<const float> best_logits, double log_total, const SamplingParams& params) {
  return best_nucleus(best_logits, log_total, params).second;
}

void nucleus_distribution(std::span<const std::int32_t> best_tokens, std::span<const float> best_logits, double log_total,
                          int vocab, const SamplingParams& params, std::vector<float>& probs) {
  const auto [p, keep] = best_nucleus(best_logits, log_total, params);
  if (keep == 0) throw std::invalid_argument("the nucleus reaches beyond the row's best tokens");
  probs.assign(std::size_t(vocab), 0.0f);
  normalise(best_tokens, p, keep, probs);
}

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(std::uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

std::uint64_t Rng::next() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

std::int32_t sample_from(std::span<const float> probs, Rng& rng) {
  double total = 0;
  for (float p : probs) total += p;
  double r = rng.uniform() * total;
  std::int32_t last_nonzero = 0;
  for (std::size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    last_nonzero = std::int32_t(i);
    r -= probs[i];
    if (r < 0) return std::int32_t(i);
  }
  return last_nonzero;  // rounding left a sliver of mass
}

std::int32_t sample_token(std::span<const float> logits, const SamplingParams& params, Rng& rng) {
  if (params.greedy()) return argmax(logits);
  thread_local std::vector<float> probs;
  sampling_distribution(logits, params, probs);
  return sample_from(probs, rng);
}

std::int32_t Sampler::next(std::span<const float> logits) { return sample_token(logits, params_, rng_); }

}  // namespace banyan
