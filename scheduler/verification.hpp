#pragma once
// Deciding which speculated tokens the LLM accepts, from its logits at every tree node.
//   greedy: follow the child that equals the LLM's argmax while there is one, then add the
//     LLM's own argmax — exactly what incremental greedy decoding would produce.
//   sampling: multi-step speculative sampling (SpecInfer's MSS). At each node, try the drafts
//     in order: accept draft x with probability min(1, p(x)/q(x)), otherwise replace p by the
//     normalised residual max(0, p - q); when no draft is accepted, sample from what is left.
//     The tokens produced follow the LLM's sampling distribution exactly.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/sampler.hpp"
#include "scheduler/token_tree.hpp"

namespace banyan {

struct Verification {
  std::vector<int> path;               // accepted tree nodes after the root, in order
  std::vector<std::int32_t> tokens;    // their tokens, then the LLM's own next token
};

// The LLM's most likely next token at a tree node (the argmax); its sampling distribution there
// (model/sampler.hpp's sampling_distribution, into the vector given).
using NodeBest = std::function<std::int32_t(int node)>;
using NodeDistribution = std::function<void(int node, std::vector<float>& p)>;

Verification verify_greedy(const TokenTree& tree, const NodeBest& best);
Verification verify_sampling(const TokenTree& tree, const NodeDistribution& distribution, Rng& rng);

}  // namespace banyan
