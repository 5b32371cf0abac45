#include "scheduler/token_tree.hpp"

#include <stdexcept>

namespace banyan {

TokenTree::TokenTree(std::int32_t root_token) { nodes_.push_back({root_token, -1, 0, {}, {}}); }

int TokenTree::find_child(int parent, std::int32_t token) const {
  for (int c : node(parent).children)
    if (node(c).token == token) return c;
  return -1;
}

int TokenTree::add_child(int parent, std::int32_t token) {
  if (int c = find_child(parent, token); c >= 0) return c;
  if (size() >= kMaxTreeNodes) throw std::length_error("token tree is full");
  nodes_.push_back({token, parent, node(parent).depth + 1, {}, {}});
  const int c = size() - 1;
  nodes_[std::size_t(parent)].children.push_back(c);
  return c;
}

void TokenTree::add_draft(int child, std::shared_ptr<const std::vector<float>> q) {
  nodes_[std::size_t(node(child).parent)].drafts.push_back({child, std::move(q)});
}

std::uint64_t TokenTree::ancestor_mask(int n) const {
  std::uint64_t mask = 0;
  for (; n >= 0; n = node(n).parent) mask |= std::uint64_t(1) << n;
  return mask;
}

int TokenTree::depth() const {
  int d = 0;
  for (const auto& n : nodes_) d = std::max(d, n.depth);
  return d;
}

TokenTree TokenTree::merge(const std::vector<TokenTree>& trees) {
  if (trees.empty()) throw std::invalid_argument("merging no trees");
  TokenTree out(trees[0].node(0).token);
  std::vector<std::vector<int>> to_out(trees.size());  // node index in tree t -> index in out
  int max_depth = 0;
  for (std::size_t t = 0; t < trees.size(); ++t) {
    if (trees[t].node(0).token != out.node(0).token) throw std::invalid_argument("merging trees with different roots");
    to_out[t].assign(std::size_t(trees[t].size()), -1);
    to_out[t][0] = 0;
    max_depth = std::max(max_depth, trees[t].depth());
  }
  for (int d = 1; d <= max_depth; ++d) {
    for (std::size_t t = 0; t < trees.size(); ++t) {
      for (int i = 1; i < trees[t].size(); ++i) {
        const Node& n = trees[t].node(i);
        if (n.depth == d) to_out[t][std::size_t(i)] = out.add_child(to_out[t][std::size_t(n.parent)], n.token);
      }
    }
  }
  for (std::size_t t = 0; t < trees.size(); ++t)
    for (int i = 0; i < trees[t].size(); ++i)
      for (const Draft& dr : trees[t].node(i).drafts) out.add_draft(to_out[t][std::size_t(dr.child)], dr.q);
  return out;
}

}  // namespace banyan
