#pragma once
// The LLM as the engine drives it: one forward pass over a batch, and moving KV rows within a
// slot (an accepted tree path compacted into place). LocalLlm runs a whole model in this
// thread; actors/staged_llm runs it as a pipeline of stage actors.
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "model/llama_model.hpp"

namespace banyan {

class LlmRunner {
 public:
  virtual ~LlmRunner() = default;
  virtual const LlamaConfig& config() const = 0;
  // The KV cache (model/kv_layout.hpp); called once, before any forward.
  virtual void create_kv_cache(const KvLayout& layout) = 0;
  // The logits of batch.logit_rows, row after row ([logit_rows.size(), vocab_size]), or their
  // summaries (batch.summary_k).
  virtual void forward(const ForwardBatch& batch, std::vector<float>& logits) = 0;
  // Copies KV rows within `slot` (its block table `blocks` in a paged cache), every layer, in
  // the order given; done before the next forward.
  virtual void move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to, std::span<const std::int32_t> blocks) = 0;
};

// A whole model and its KV cache, in the calling thread.
class LocalLlm final : public LlmRunner {
 public:
  explicit LocalLlm(LlamaModel& model) : model_(model) {}
  const LlamaConfig& config() const override { return model_.config(); }
  void create_kv_cache(const KvLayout& layout) override { kv_ = model_.create_kv_cache(layout); }
  void forward(const ForwardBatch& batch, std::vector<float>& logits) override { model_.forward(batch, *kv_, logits); }
  void move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to, std::span<const std::int32_t> blocks) override {
    model_.move_kv_rows(*kv_, slot, from_to, blocks);
  }

 private:
  LlamaModel& model_;
  std::unique_ptr<KvCache> kv_;
};

}  // namespace banyan
