#pragma once
// The LLM as a pipeline of stage actors (llm_shard), and the engine's view of it.
#include <caf/all.hpp>
#include <string>
#include <utility>
#include <memory>
#include <vector>

#include "actors/interfaces.hpp"
#include "engine/llm_runner.hpp"
#include "engine/pipeline_stage.hpp"

namespace banyan::actors {

// Spawns one detached actor per stage (a stage blocks its thread while the backend computes;
// a stage of tensor shards runs the others on threads of its own),
// each passing its activations to the next; `stages` are consecutive layer ranges of one model,
// the first first, and `after` what follows the last (a link to a stage in another process,
// actors/node.hpp), if anything does. `shard_links[i]`, when given, leads to stage i's tensor
// shards in other processes (links to their nodes): the stage sends them every forward and
// KV cache and answers once they have. A stage that holds shards of another process's stage
// (PipelineStage::leads() false) answers its leader alone, with nothing.
// Returns the handles, the first first.
std::vector<llm_stage_actor> spawn_llm_stages(caf::actor_system& system, std::vector<std::shared_ptr<PipelineStage>> stages,
                                              llm_stage_actor after = {},
                                              std::vector<std::vector<llm_stage_actor>> shard_links = {});

// The engine's LLM when it runs as stage actors: a forward pass is a StageForward to the first
// stage, answered with the logits by the last. KV moves travel with the next forward, so every
// stage applies them before it computes, wherever it runs.
class StagedLlm final : public LlmRunner {
 public:
  StagedLlm(caf::actor_system& system, const llm_stage_actor& first, const LlamaConfig& config);
  const LlamaConfig& config() const override { return config_; }
  void create_kv_cache(const KvLayout& layout) override;
  void forward(const ForwardBatch& batch, std::vector<float>& logits) override;
  void move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to, std::span<const std::int32_t> blocks) override;

 private:
  caf::actor_system& system_;
  // Weak: a detached actor's thread lives until its last strong handle is gone, and the actor
  // system waits for every such thread; whoever spawned the stages holds them strongly.
  caf::weak_actor_ptr first_;
  LlamaConfig config_;
  std::vector<KvMoves> pending_moves_;
};

}  // namespace banyan::actors
