#include "engine/ssm_runner.hpp"

#include <map>

#include "model/error.hpp"
#include "model/logit_summary.hpp"
#include "scheduler/tree_batch.hpp"

namespace banyan {

std::size_t SsmRunner::create_kv_cache(const KvLayout& layout) {
  kv_ = model_.create_kv_cache(layout);
  fed_.assign(std::size_t(layout.slots), 0);
  grown_.assign(std::size_t(layout.slots), TokenTree(0));
  return kv_->bytes();
}

SsmTrees SsmRunner::run(const SsmWork& work) {
  if (!kv_) throw Error("SSM work before its KV cache was created");
  for (const auto& c : work.commits) commit(c);
  const int vocab = model_.config().vocab_size;
  std::vector<Rng> rngs;
  rngs.reserve(work.jobs.size());  // the expansions hold references into it
  std::vector<TreeExpansion> exps;
  exps.reserve(work.jobs.size());
  // Greedy beams need only each row's best `width` tokens, chains sampling from the top_k their
  // top_k: the backend summarises the rows when every job's do.
  SummaryWidth width(vocab);
  for (const auto& j : work.jobs) {
    rngs.push_back(j.rng);
    exps.emplace_back(j.tokens.back(), j.shape, j.sampling, rngs.back());
    width.need(j.sampling, j.shape.width);
  }

  // A paged cache: the block table of each slot this work touches.
  std::map<int, std::span<const std::int32_t>> tables;
  for (const auto& c : work.prefill)
    if (!c.tokens.empty()) tables[c.slot] = c.blocks;
  for (const auto& j : work.jobs) tables[j.slot] = j.blocks;
  auto forward = [&](ForwardBatch& b) {
    if (kv_->spec().paged()) b.attach_block_tables([&](int slot) { return tables.at(slot); });
    model_.forward(b, *kv_, logits_);
  };

  // Pass 0: prompt chunks, then each request's unseen committed tokens up to its root.
  ForwardBatch batch;
  for (const auto& c : work.prefill) {
    for (std::size_t i = 0; i < c.tokens.size(); ++i) batch.add_causal(c.tokens[i], c.slot, c.begin + int(i), false);
    fed_.at(std::size_t(c.slot)) = c.begin + int(c.tokens.size());
  }
  for (std::size_t i = 0; i < work.jobs.size(); ++i) {
    if (exps[i].done()) continue;
    const SsmJob& j = work.jobs[i];
    int& fed = fed_.at(std::size_t(j.slot));
    if (fed < j.first) throw Error("SSM job for slot " + std::to_string(j.slot) + " skips tokens it has not seen");
    for (int p = fed; p <= j.root_row; ++p) batch.add_causal(j.tokens[std::size_t(p - j.first)], j.slot, p, p == j.root_row);
    fed = j.root_row + 1;
  }

  // Each pass computes the logits of every expansion's frontier; the next pass feeds the new level.
  for (bool first = true;; first = false) {
    if (!first) {
      batch = {};
      for (std::size_t i = 0; i < work.jobs.size(); ++i)
        for (int node : exps[i].frontier())
          add_tree_node(batch, exps[i].tree(), node, work.jobs[i].slot, work.jobs[i].root_row, true);
    }
    if (batch.size() == 0) break;
    batch.summary_k = width.k();
    forward(batch);
    const LogitRows logits(logits_, vocab, width.k());
    std::size_t row = 0;
    for (auto& x : exps) {
      if (x.done()) continue;
      const std::size_t rows = x.frontier().size();
      x.advance(logits, row);
      row += rows;
    }
  }

  SsmTrees out;
  for (std::size_t i = 0; i < exps.size(); ++i) {
    out.trees.push_back(exps[i].tree());
    grown_[std::size_t(work.jobs[i].slot)] = exps[i].tree();
  }
  out.rngs = std::move(rngs);
  return out;
}

void SsmRunner::commit(const SsmCommit& c) {
  const TokenTree& own = grown_.at(std::size_t(c.slot));
  if (own.size() == 1) return;  // no tree last step: the SSM did not run for this request
  // Nodes of the SSM's own tree were computed at rows root_row + node, except the last level.
  std::vector<std::pair<int, int>> moves;
  int node = 0;
  for (std::size_t j = 0; j + 1 < c.accepted.size(); ++j) {  // the last accepted token is the new root
    node = own.find_child(node, c.accepted[j]);
    if (node < 0 || own.node(node).depth >= own.depth()) break;
    moves.emplace_back(c.root_row + node, c.root_row + 1 + int(j));
  }
  if (!moves.empty()) model_.move_kv_rows(*kv_, c.slot, moves, c.blocks);
  fed_[std::size_t(c.slot)] = c.root_row + 1 + int(moves.size());
}

}  // namespace banyan
