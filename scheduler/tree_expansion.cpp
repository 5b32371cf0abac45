#include "scheduler/tree_expansion.hpp"

#include <algorithm>

namespace banyan {

TreeExpansion::TreeExpansion(std::int32_t root_token, TreeShape shape, const SamplingParams& sampling, Rng& rng)
    : tree_(root_token), shape_(shape), sampling_(sampling), rng_(rng) {
  if (shape_.width > 0 && shape_.depth > 0) {
    frontier_ = {0};
    beam_score_ = {0.0};
    chains_ = {shape_.width};
  }
}

void TreeExpansion::advance(const LogitRows& logits, std::size_t first_row) {
  if (sampling_.greedy()) {
    advance_beams(logits, first_row);
  } else {
    advance_chains(logits, first_row);
  }
}

void TreeExpansion::advance_beams(const LogitRows& logits, std::size_t first_row) {
  struct Candidate {
    int parent;
    std::int32_t token;
    double score;
  };
  std::vector<Candidate> candidates;
  for (std::size_t b = 0; b < frontier_.size(); ++b) {
    const TopLogits top = logits.top(first_row + b, shape_.width);
    for (std::size_t i = 0; i < top.tokens.size(); ++i)
      candidates.push_back({frontier_[b], top.tokens[i], beam_score_[b] + top.log_prob(i)});
  }
  // Beam 0's best child keeps the SSM's greedy path in the tree; the rest go by score. (A single
  // beam compares no scores: its rows' summaries carry no normaliser, and its score is NaN.)
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

void TreeExpansion::advance_chains(const LogitRows& logits, std::size_t first_row) {
  std::vector<int> next;
  std::vector<int> next_chains;
  for (std::size_t f = 0; f < frontier_.size(); ++f) {
    auto q = std::make_shared<std::vector<float>>();
    logits.distribution(first_row + f, sampling_, *q);
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
