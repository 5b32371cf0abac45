#pragma once
// The engine's small speculative models, as it drives them: each step every SSM gets its own
// SsmWork (the same jobs, each with that SSM's draws) and answers its trees. LocalSsms runs
// them one after the other in the calling thread; actors/ssm runs each in its own actor, all at
// once.
#include <memory>
#include <vector>

#include "engine/ssm_runner.hpp"

namespace banyan {

class SsmGroup {
 public:
  virtual ~SsmGroup() = default;
  virtual int size() const = 0;
  virtual const LlamaConfig& config(int ssm) const = 0;
  // Every SSM's KV cache (model/kv_layout.hpp); called once, before any work.
  virtual void create_kv_caches(const KvLayout& layout) = 0;
  // work[i] goes to SSM i; the answers come in the same order.
  virtual std::vector<SsmTrees> run(const std::vector<SsmWork>& work) = 0;
};

class LocalSsms final : public SsmGroup {
 public:
  explicit LocalSsms(const std::vector<LlamaModel*>& models) {
    for (LlamaModel* m : models) runners_.emplace_back(*m);
  }
  int size() const override { return int(runners_.size()); }
  const LlamaConfig& config(int ssm) const override { return runners_[std::size_t(ssm)].model().config(); }
  void create_kv_caches(const KvLayout& layout) override {
    for (auto& r : runners_) r.create_kv_cache(layout);
  }
  std::vector<SsmTrees> run(const std::vector<SsmWork>& work) override {
    std::vector<SsmTrees> out;
    for (std::size_t i = 0; i < runners_.size(); ++i) out.push_back(runners_[i].run(work[i]));
    return out;
  }

 private:
  std::vector<SsmRunner> runners_;
};

}  // namespace banyan
