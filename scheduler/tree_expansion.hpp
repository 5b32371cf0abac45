#pragma once
// How one small model grows its candidate tree for one request, a level per forward pass.
//   greedy requests: beam search of width W. Beam 0 always follows the SSM's own top choice, so
//     the tree contains the SSM's greedy path; the other W-1 beams are the best by cumulative
//     log-probability.
//   sampling requests: W chains of independent draws from the SSM's sampling distribution q.
//     Chains that draw the same token share a node, which then draws once per chain: the tree
//     never exceeds 1 + W*D nodes, whatever the draws, which keeps verification unbiased.
// The caller runs the SSM on frontier() and hands the logits to advance().
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/logit_summary.hpp"
#include "model/sampler.hpp"
#include "scheduler/token_tree.hpp"

namespace banyan {

// The default is measured (docs/benchmarks.md, bench specinfer): on the CPU backend every
// verified token costs compute, and one chain of 4 beat wider and deeper trees (3x8 included)
// on both the demo pair and the llama-160m pair.
struct TreeShape {
  int width = 1;  // W: beams, or chains
  int depth = 4;  // D: speculated tokens along each path
};

class TreeExpansion {
 public:
  // `rng` draws the samples of sampling requests (unused for greedy ones).
  TreeExpansion(std::int32_t root_token, TreeShape shape, const SamplingParams& sampling, Rng& rng);

  // Nodes whose next-token logits the next pass must compute; empty once the tree is complete.
  const std::vector<int>& frontier() const { return frontier_; }
  bool done() const { return frontier_.empty(); }
  // The frontier nodes' logits are rows first_row, first_row + 1, ... of `logits`, in frontier
  // order; greedy beams read their best `width` tokens only (summaries will do).
  void advance(const LogitRows& logits, std::size_t first_row);

  const TokenTree& tree() const { return tree_; }

 private:
  void advance_beams(const LogitRows& logits, std::size_t first_row);
  void advance_chains(const LogitRows& logits, std::size_t first_row);

  TokenTree tree_;
  TreeShape shape_;
  SamplingParams sampling_;
  Rng& rng_;
  std::vector<int> frontier_;
  std::vector<double> beam_score_;  // cumulative log-probability, per frontier node
  std::vector<int> chains_;         // chains passing through each frontier node
};

}  // namespace banyan
