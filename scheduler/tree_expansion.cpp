#include "scheduler/tree_expansion.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace banyan {

TreeExpansion::TreeExpansion(std::int32_t root_token, TreeShape shape, const SamplingParams& sampling, Rng& rng)
    : tree_(root_token), shape_(shape), sampling_(sampling), rng_(rng) {
  if (shape_.width > 0 && shape_.depth > 0) {
    frontier_ = {0};
    beam_score_ = {0.0};
    chains_ = {shape_.width};
  }
}

void TreeExpansion::advance(std::span<const float> logits, int vocab) {
  if (sampling_.greedy()) {
    advance_beams(logits, vocab);
  } else {
    advance_chains(logits, vocab);
  }
}

namespace {

// The k most likely tokens of a row with their log-probabilities, best first.
std::vector<std::pair<std::int32_t, double>> top_k_log_probs(std::span<const float> row, int k) {
  const float max = *std::max_element(row.begin(), row.end());
  double total = 0;
  for (float v : row) total += std::exp(double(v) - max);
  const double log_z = max + std::log(total);
  std::vector<std::int32_t> ids(row.size());
  std::iota(ids.begin(), ids.end(), 0);
  k = std::min<int>(k, int(row.size()));
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](std::int32_t a, std::int32_t b) {
    return row[std::size_t(a)] > row[std::size_t(b)] || (row[std::size_t(a)] == row[std::size_t(b)] && a < b);
  });
  std::vector<std::pair<std::int32_t, double>> out;
  for (int i = 0; i < k; ++i) out.emplace_back(ids[std::size_t(i)], double(row[std::size_t(ids[std::size_t(i)])]) - log_z);
  return out;
}

}  // namespace

void TreeExpansion::advance_beams(std::span<const float> logits, int vocab) {
  struct Candidate {
    int parent;
    std::int32_t token;
    double score;
  };
  std::vector<Candidate> candidates;
  for (std::size_t b = 0; b < frontier_.size(); ++b) {
    const auto row = logits.subspan(b * std::size_t(vocab), std::size_t(vocab));
    for (const auto& [token, logp] : top_k_log_probs(row, shape_.width))
      candidates.push_back({frontier_[b], token, beam_score_[b] + logp});
  }
  // Beam 0's best child keeps the SSM's greedy path in the tree; the rest go by score.
  std::vector<Candidate> chosen = {candidates.front()};
  std::stable_sort(candidates.begin() + 1, candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  for (std::size_t i = 1; i < candidates.size() && int(chosen.size()) < shape_.width; ++i) chosen.push_back(candidates[i]);

  std::vector<int> next;
  std::vector<double> scores;
  for (const auto& c : chosen) {
    next.push_back(tree_.add_child(c.parent, c.token));
    scores.push_back(c.score);
  }
  const bool last_level = tree_.node(next.front()).depth >= shape_.depth;
  frontier_ = last_level ? std::vector<int>{} : next;
  beam_score_ = scores;
}

void TreeExpansion::advance_chains(std::span<const float> logits, int vocab) {
  std::vector<int> next;
  std::vector<int> next_chains;
  for (std::size_t f = 0; f < frontier_.size(); ++f) {
    auto q = std::make_shared<std::vector<float>>();
    sampling_distribution(logits.subspan(f * std::size_t(vocab), std::size_t(vocab)), sampling_, *q);
    for (int draw = 0; draw < chains_[f]; ++draw) {
      const int child = tree_.add_child(frontier_[f], sample_from(*q, rng_));
      tree_.add_draft(child, q);
      auto it = std::find(next.begin(), next.end(), child);
      if (it == next.end()) {
        next.push_back(child);
        next_chains.push_back(1);
      } else {
        ++next_chains[std::size_t(it - next.begin())];
      }
    }
  }
  const bool last_level = tree_.node(next.front()).depth >= shape_.depth;
  frontier_ = last_level ? std::vector<int>{} : next;
  chains_ = next_chains;
}

}  // namespace banyan
