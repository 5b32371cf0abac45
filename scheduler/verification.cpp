#include "scheduler/verification.hpp"

#include <algorithm>

namespace banyan {

Verification verify_greedy(const TokenTree& tree, const NodeBest& best) {
  Verification v;
  int at = 0;
  for (;;) {
    const std::int32_t token = best(at);
    v.tokens.push_back(token);
    const int child = tree.find_child(at, token);
    if (child < 0) return v;
    v.path.push_back(child);
    at = child;
  }
}

Verification verify_sampling(const TokenTree& tree, const NodeDistribution& distribution, Rng& rng) {
  Verification v;
  std::vector<float> p;
  int at = 0;
  for (;;) {
    distribution(at, p);
    int accepted = -1;
    for (const auto& draft : tree.node(at).drafts) {
      const std::int32_t x = tree.node(draft.child).token;
      const std::vector<float>& q = *draft.q;
      if (rng.uniform() * q[std::size_t(x)] < p[std::size_t(x)]) {  // u < p(x) / q(x)
        accepted = draft.child;
        break;
      }
      // Rejected: the next draft competes for the residual mass max(0, p - q).
      double total = 0;
      std::vector<float> residual(p.size());
      for (std::size_t i = 0; i < p.size(); ++i) total += residual[i] = std::max(0.0f, p[i] - q[i]);
      if (total <= 0) break;  // p == q up to rounding: nothing left to correct
      for (std::size_t i = 0; i < p.size(); ++i) p[i] = float(residual[i] / total);
    }
    if (accepted < 0) {
      v.tokens.push_back(sample_from(p, rng));
      return v;
    }
    v.path.push_back(accepted);
    v.tokens.push_back(tree.node(accepted).token);
    at = accepted;
  }
}

}  // namespace banyan
