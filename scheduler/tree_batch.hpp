#pragma once
// Placing token-tree nodes in a forward batch: node k of a tree rooted at cache row R goes to row
// R + k at position R + depth(k), and attends to rows [0, R) plus its ancestors' rows.
#include "model/forward_batch.hpp"
#include "scheduler/token_tree.hpp"

namespace banyan {

inline void add_tree_node(ForwardBatch& b, const TokenTree& tree, int node, int slot, int root_row, bool want_logits) {
  if (want_logits) b.logit_rows.push_back(std::int32_t(b.size()));
  b.tokens.push_back(tree.node(node).token);
  b.positions.push_back(root_row + tree.node(node).depth);
  b.slots.push_back(slot);
  b.cache_rows.push_back(root_row + node);
  b.visible.push_back(root_row);
  b.tree_masks.push_back(tree.ancestor_mask(node));
}

}  // namespace banyan
