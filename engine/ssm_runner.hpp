#pragma once
// One small speculative model (SSM) and its KV cache: it follows every request's committed
// tokens and, each step, grows a candidate tree per decoding request (TreeExpansion), one level
// per batched forward pass. It remembers what it has seen of each slot, so the engine only
// sends what is new (SsmWork).
#include <memory>
#include <vector>

#include "engine/ssm_work.hpp"
#include "model/llama_model.hpp"

namespace banyan {

class SsmRunner {
 public:
  explicit SsmRunner(LlamaModel& model) : model_(model) {}

  // The KV cache (model/kv_layout.hpp); called once, before any work. Returns its bytes.
  std::size_t create_kv_cache(const KvLayout& layout);
  // Applies the commits, prefills the chunks and expands every job's tree.
  SsmTrees run(const SsmWork& work);

  LlamaModel& model() const { return model_; }

 private:
  // Keeps the accepted tokens this SSM computed for the slot's last tree in its cache.
  void commit(const SsmCommit& c);

  LlamaModel& model_;
  std::unique_ptr<KvCache> kv_;
  std::vector<int> fed_;          // per slot: rows [0, fed) hold committed tokens
  std::vector<TokenTree> grown_;  // per slot: the tree grown last for it
  std::vector<float> logits_;
};

}  // namespace banyan
