#pragma once
// A request's token tree for one speculative step. Node 0 is the root: the last committed token,
// whose key/value the LLM has not yet computed. Every other node is a candidate continuation
// proposed by a small model (SSM). Nodes are kept in topological order (a parent before its
// children), so the node index is also the token's place in the LLM's verify batch.
#include <cstdint>
#include <memory>
#include <vector>

namespace banyan {

// How many tokens one tree may hold, root included: a token's ancestors travel as a 64-bit mask.
inline constexpr int kMaxTreeNodes = 64;

class TokenTree {
 public:
  // A draw of one child from a proposal distribution q (sampling mode). Multi-step speculative
  // sampling needs every draw in order, duplicates included, with the q it came from.
  struct Draft {
    int child;
    std::shared_ptr<const std::vector<float>> q;
  };
  struct Node {
    std::int32_t token;
    int parent;  // -1 for the root
    int depth;   // 0 for the root
    std::vector<int> children;
    std::vector<Draft> drafts;
  };

  explicit TokenTree(std::int32_t root_token);
  TokenTree() = default;  // no nodes, not even a root: only something to assign or deserialize into

  int size() const { return int(nodes_.size()); }
  const Node& node(int i) const { return nodes_[std::size_t(i)]; }
  const std::vector<Node>& nodes() const { return nodes_; }

  // The child of `parent` with `token`, added if there is none (siblings never repeat a token).
  // Throws std::length_error past kMaxTreeNodes.
  int add_child(int parent, std::int32_t token);
  // Records a draw of `child` under its parent from distribution q.
  void add_draft(int child, std::shared_ptr<const std::vector<float>> q);
  // The child of `parent` with `token`, or -1.
  int find_child(int parent, std::int32_t token) const;

  // Bit i set for each ancestor i of `node`, the node itself included.
  std::uint64_t ancestor_mask(int node) const;
  int depth() const;  // deepest node's depth

  // Merges several trees with the same root into one, level by level so that no tree's deep
  // nodes crowd out another's shallow ones. Same-token siblings share a node; drafts are kept.
  static TokenTree merge(const std::vector<TokenTree>& trees);

  // Its nodes, for inspectors that copy them: an SSM's trees travel in actor messages.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, TokenTree& x) {
    return f(x.nodes_);
  }

 private:
  std::vector<Node> nodes_;
};

}  // namespace banyan
