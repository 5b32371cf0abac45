#pragma once
// One small speculative model (SSM) and its KV cache: it follows every request's committed
// tokens and, each step, grows a candidate tree per decoding request (TreeExpansion), one level
// per batched forward pass.
#include <vector>

#include "model/llama_model.hpp"
#include "scheduler/request_manager.hpp"
#include "scheduler/tree_expansion.hpp"

namespace banyan {

struct ExpansionJob {
  const DecodeEntry* entry;
  TreeShape shape;           // depth 0: no tree this step
  const SamplingParams* sampling;
  Rng* rng;                  // the request's draws
};

class SsmRunner {
 public:
  SsmRunner(LlamaModel& model, int slots, int capacity);

  // Prefills this step's prompt chunks and expands every job's tree; returns one tree per job.
  std::vector<TokenTree> expand(const StepPlan& plan, const RequestManager& requests,
                                const std::vector<ExpansionJob>& jobs);
  // Keeps the accepted tokens this SSM computed for a request (its `own` tree) in its cache.
  void commit(int slot, int root_row, const TokenTree& own, const std::vector<std::int32_t>& accepted);
  void reset(int slot) { fed_[std::size_t(slot)] = 0; }

  LlamaModel& model() { return model_; }
  double seconds() const { return seconds_; }

 private:
  LlamaModel& model_;
  std::unique_ptr<KvCache> kv_;
  std::vector<int> fed_;  // per slot: rows [0, fed) hold committed tokens
  std::vector<float> logits_;
  double seconds_ = 0;
};

}  // namespace banyan
