#pragma once
// One pipeline stage's compute: a range of the LLM's layers, held whole by one model or split
// over tensor shards (ModelOptions::shard) that run side by side, one thread each, summing their
// partial results through their Collectives. It may hold only some of the shards (consecutive
// ranks), the others running in other processes: then the stage that holds shard 0 writes the
// output, the others only take part in the sums. The first shard held runs in the caller's
// thread. A stage actor (actors/llm_stage) or StageLlm drives it; no CAF here.
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/llm_runner.hpp"
#include "model/llama_model.hpp"

namespace banyan {

class PipelineStage {
 public:
  // The shards in rank order (one: the stage is not split), consecutive ranks of one degree;
  // each must hold the same layers and, unless it is the whole stage, sum through
  // collectives[i] (which it was given with use_collective).
  explicit PipelineStage(std::vector<std::shared_ptr<LlamaModel>> shards,
                         std::vector<std::shared_ptr<Collective>> collectives = {});
  ~PipelineStage();
  PipelineStage(const PipelineStage&) = delete;
  PipelineStage& operator=(const PipelineStage&) = delete;

  const LlamaConfig& config() const { return shards_.front()->config(); }
  int first_layer() const { return shards_.front()->first_layer(); }
  int end_layer() const { return shards_.front()->end_layer(); }
  LayerRange layers() const { return {first_layer(), end_layer()}; }
  bool is_last_stage() const { return shards_.front()->is_last_stage(); }
  // The shards held here, the first first; all of the stage unless other processes hold some.
  int tensor_shards() const { return int(shards_.size()); }
  // Whether it writes the stage's output (it holds shard 0).
  bool leads() const { return shards_.front()->shard().rank == 0; }
  const LlamaModel& shard(int i) const { return *shards_[std::size_t(i)]; }

  // The KV cache (model/kv_layout.hpp) of every shard; returns the bytes it takes.
  std::size_t create_kv_cache(const KvLayout& layout);
  void move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to, std::span<const std::int32_t> blocks);
  // LlamaModel::forward_stage over the shards; `round` goes to their collectives
  // (Collective::begin_round): the stage's shards in other processes must get the same.
  void forward(const ForwardBatch& batch, std::span<const float> input, std::vector<float>& output,
               std::uint64_t round = 0);

 private:
  // The shards but the first, each on a thread of its own, woken for every forward.
  struct Helpers {
    std::mutex mutex;
    std::condition_variable wake, done;
    std::uint64_t round = 0;
    int busy = 0;
    bool stopping = false;
    const ForwardBatch* batch = nullptr;
    std::span<const float> input;
    std::exception_ptr failure;
    std::vector<std::thread> threads;
  };
  void helper_loop(int rank);

  std::vector<std::shared_ptr<LlamaModel>> shards_;
  std::vector<std::shared_ptr<Collective>> collectives_;
  std::vector<std::unique_ptr<KvCache>> kv_;
  Helpers helpers_;
};

// A stage of `collectives.size()` tensor shards (none: one, whole), `load` making each model (it
// sets the shard in the model's options); shard r sums through collectives[r].
using ShardLoader = std::function<std::shared_ptr<LlamaModel>(TensorShard)>;
std::shared_ptr<PipelineStage> sharded_stage(const std::vector<std::shared_ptr<Collective>>& collectives,
                                             const ShardLoader& load);
// Shards first_rank.. of a stage of `degree` shards, one per collective (the others run elsewhere).
std::shared_ptr<PipelineStage> sharded_stage(int first_rank, int degree,
                                             const std::vector<std::shared_ptr<Collective>>& collectives,
                                             const ShardLoader& load);

// A whole LLM as one PipelineStage (its tensor shards, maybe), run in the calling thread.
class StageLlm final : public LlmRunner {
 public:
  explicit StageLlm(std::shared_ptr<PipelineStage> stage);
  const LlamaConfig& config() const override { return stage_->config(); }
  void create_kv_cache(const KvLayout& layout) override { stage_->create_kv_cache(layout); }
  void forward(const ForwardBatch& batch, std::vector<float>& logits) override { stage_->forward(batch, {}, logits); }
  void move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to, std::span<const std::int32_t> blocks) override {
    stage_->move_kv_rows(slot, from_to, blocks);
  }

 private:
  std::shared_ptr<PipelineStage> stage_;
};

}  // namespace banyan
