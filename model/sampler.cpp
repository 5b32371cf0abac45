#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace banyan {

std::int32_t argmax(std::span<const float> logits) {
  return std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

namespace {

// probs over the candidates in `order` (best first, the top_k kept; logit(i) is order[i]'s
// logit): softmax at the temperature, then the nucleus, renormalised.
template <typename Logit>
void distribute(std::span<const std::int32_t> order, const Logit& logit, double max_logit, const SamplingParams& params,
                std::vector<float>& probs) {
  const std::size_t k = order.size();
  std::vector<double> p(k);
  double total = 0;
  for (std::size_t i = 0; i < k; ++i) {
    p[i] = std::exp((double(logit(i)) - max_logit) / params.temperature);
    total += p[i];
  }
  // Nucleus: the smallest prefix whose mass reaches top_p (always at least one token).
  std::size_t keep = k;
  if (params.top_p < 1.0f) {
    double mass = 0;
    for (std::size_t i = 0; i < k; ++i) {
      mass += p[i] / total;
      if (mass >= params.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  const double kept = std::accumulate(p.begin(), p.begin() + std::ptrdiff_t(keep), 0.0);
  for (std::size_t i = 0; i < keep; ++i) probs[std::size_t(order[i])] = float(p[i] / kept);
}

}  // namespace

void sampling_distribution(std::span<const float> logits, const SamplingParams& params, std::vector<float>& probs) {
  const std::size_t n = logits.size();
  probs.assign(n, 0.0f);
  if (params.greedy()) {
    probs[std::size_t(argmax(logits))] = 1.0f;
    return;
  }
  // Order candidates by logit (stable: ties keep the lower id first), keep the top k.
  std::vector<std::int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const std::size_t k = params.top_k > 0 ? std::min<std::size_t>(std::size_t(params.top_k), n) : n;
  auto by_logit = [&](std::int32_t a, std::int32_t b) {
    return logits[std::size_t(a)] > logits[std::size_t(b)] || (logits[std::size_t(a)] == logits[std::size_t(b)] && a < b);
  };
  const bool truncates = k < n || params.top_p < 1.0f;  // plain sampling needs no ordering
  if (truncates) {
    std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(), by_logit);
    order.resize(k);
  }
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  distribute(order, [&](std::size_t i) { return logits[std::size_t(order[i])]; }, max_logit, params, probs);
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
  const std::size_t k = std::size_t(params.top_k);
  distribute(best_tokens.first(k), [&](std::size_t i) { return best_logits[i]; }, double(best_logits.front()), params,
             probs);
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
