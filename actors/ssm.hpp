#pragma once
// The SSMs as actors (ssm): one detached actor per small model, and the engine's view of them.
#include <caf/all.hpp>
#include <memory>
#include <vector>

#include "actors/interfaces.hpp"
#include "engine/ssm_group.hpp"

namespace banyan::actors {

// Spawns one detached actor per SSM (it blocks its thread while the backend computes).
std::vector<ssm_actor> spawn_ssms(caf::actor_system& system, std::vector<std::shared_ptr<LlamaModel>> models);

// The engine's SSMs when they run as actors: each step's work goes to every SSM at once and
// their trees are collected, so several SSMs expand in parallel, each on its own thread.
class ActorSsms final : public SsmGroup {
 public:
  // `configs[i]` is SSM i's model config.
  ActorSsms(caf::actor_system& system, const std::vector<ssm_actor>& ssms, std::vector<LlamaConfig> configs);
  int size() const override { return int(ssms_.size()); }
  const LlamaConfig& config(int ssm) const override { return configs_[std::size_t(ssm)]; }
  void create_kv_caches(const KvLayout& layout) override;
  std::vector<SsmTrees> run(const std::vector<SsmWork>& work) override;

 private:
  caf::actor_system& system_;
  // Weak, as StagedLlm holds its stages: whoever spawned the SSMs holds them strongly.
  std::vector<caf::weak_actor_ptr> ssms_;
  std::vector<LlamaConfig> configs_;
};

}  // namespace banyan::actors
