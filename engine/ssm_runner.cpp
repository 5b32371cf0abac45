#include "engine/ssm_runner.hpp"

#include <chrono>

#include "scheduler/tree_batch.hpp"

namespace banyan {

SsmRunner::SsmRunner(LlamaModel& model, int slots, int capacity)
    : model_(model), kv_(model.create_kv_cache(slots, capacity)), fed_(std::size_t(slots), 0) {}

std::vector<TokenTree> SsmRunner::expand(const StepPlan& plan, const RequestManager& requests,
                                         const std::vector<ExpansionJob>& jobs) {
  const auto start = std::chrono::steady_clock::now();
  const int vocab = model_.config().vocab_size;
  std::vector<TreeExpansion> exps;
  exps.reserve(jobs.size());
  for (const auto& j : jobs) exps.emplace_back(j.entry->root_token, j.shape, *j.sampling, *j.rng);

  // Pass 0: prompt chunks, then each request's unseen committed tokens up to its root.
  ForwardBatch batch;
  for (const auto& c : plan.prefill) {
    const auto& tokens = requests.request(c.id).tokens;
    for (int p = c.begin; p < c.end; ++p) batch.add_causal(tokens[std::size_t(p)], c.slot, p, false);
    fed_[std::size_t(c.slot)] = c.end;
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (exps[i].done()) continue;
    const DecodeEntry& e = *jobs[i].entry;
    const auto& tokens = requests.request(e.id).tokens;
    for (int p = fed_[std::size_t(e.slot)]; p <= e.root_row; ++p)
      batch.add_causal(tokens[std::size_t(p)], e.slot, p, p == e.root_row);
    fed_[std::size_t(e.slot)] = e.root_row + 1;
  }

  // Each pass computes the logits of every expansion's frontier; the next pass feeds the new level.
  for (bool first = true;; first = false) {
    if (!first) {
      batch = {};
      for (std::size_t i = 0; i < jobs.size(); ++i)
        for (int node : exps[i].frontier())
          add_tree_node(batch, exps[i].tree(), node, jobs[i].entry->slot, jobs[i].entry->root_row, true);
    }
    if (batch.size() == 0) break;
    model_.forward(batch, *kv_, logits_);
    std::size_t row = 0;
    for (auto& x : exps) {
      if (x.done()) continue;
      const std::size_t rows = x.frontier().size();
      x.advance({logits_.data() + row * std::size_t(vocab), rows * std::size_t(vocab)}, vocab);
      row += rows;
    }
  }

  std::vector<TokenTree> trees;
  for (auto& x : exps) trees.push_back(x.tree());
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return trees;
}

void SsmRunner::commit(int slot, int root_row, const TokenTree& own, const std::vector<std::int32_t>& accepted) {
  if (own.size() == 1) return;  // no tree this step: the SSM did not run for this request
  // Nodes of the SSM's own tree were computed at rows root_row + node, except the last level.
  std::vector<std::pair<int, int>> moves;
  int node = 0;
  for (std::size_t j = 0; j + 1 < accepted.size(); ++j) {  // the last accepted token is the new root
    node = own.find_child(node, accepted[j]);
    if (node < 0 || own.node(node).depth >= own.depth()) break;
    moves.emplace_back(root_row + node, root_row + 1 + int(j));
  }
  if (!moves.empty()) model_.backend().copy_kv_rows(*kv_, slot, moves);
  fed_[std::size_t(slot)] = root_row + 1 + int(moves.size());
}

}  // namespace banyan
