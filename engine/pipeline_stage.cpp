#include "engine/pipeline_stage.hpp"

#include "model/error.hpp"

namespace banyan {

PipelineStage::PipelineStage(std::vector<std::shared_ptr<LlamaModel>> shards,
                             std::vector<std::shared_ptr<Collective>> collectives)
    : shards_(std::move(shards)), collectives_(std::move(collectives)) {
  if (shards_.empty()) throw Error("a pipeline stage needs at least one model");
  const TensorShard first = shards_.front()->shard();
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    const LlamaModel& s = *shards_[i];
    const int rank = first.rank + int(i);
    if (s.shard().rank != rank || s.shard().degree != first.degree || rank >= first.degree ||
        s.first_layer() != first_layer() || s.end_layer() != end_layer())
      throw Error("pipeline stage: model " + std::to_string(i) + " is tensor shard " + std::to_string(s.shard().rank) +
                  " of " + std::to_string(s.shard().degree) + " (" + layers_text({s.first_layer(), s.end_layer()}) +
                  "), not shard " + std::to_string(rank) + " of " + std::to_string(first.degree) + " (" +
                  layers_text(layers()) + ")");
  }
  if (first.degree > 1 && collectives_.size() != shards_.size())
    throw Error("pipeline stage: " + std::to_string(shards_.size()) + " tensor shards but " +
                std::to_string(collectives_.size()) + " collectives");
  for (int r = 1; r < tensor_shards(); ++r) helpers_.threads.emplace_back([this, r] { helper_loop(r); });
}

PipelineStage::~PipelineStage() {
  {
    std::lock_guard lock(helpers_.mutex);
    helpers_.stopping = true;
  }
  helpers_.wake.notify_all();
  for (auto& t : helpers_.threads) t.join();
}

std::size_t PipelineStage::create_kv_cache(const KvLayout& layout) {
  kv_.clear();
  std::size_t bytes = 0;
  for (const auto& s : shards_) {
    kv_.push_back(s->create_kv_cache(layout));
    bytes += kv_.back()->bytes();
  }
  return bytes;
}

void PipelineStage::move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to,
                                 std::span<const std::int32_t> blocks) {
  for (std::size_t r = 0; r < shards_.size(); ++r) shards_[r]->move_kv_rows(*kv_[r], slot, from_to, blocks);
}

void PipelineStage::helper_loop(int rank) {
  std::uint64_t seen = 0;
  std::vector<float> unused;  // a shard but the first writes no logits, only the same activations
  for (;;) {
    std::unique_lock lock(helpers_.mutex);
    helpers_.wake.wait(lock, [&] { return helpers_.stopping || helpers_.round != seen; });
    if (helpers_.stopping) return;
    seen = helpers_.round;
    const ForwardBatch& batch = *helpers_.batch;
    const auto input = helpers_.input;
    lock.unlock();
    std::exception_ptr failure;
    try {
      shards_[std::size_t(rank)]->forward_stage(batch, *kv_[std::size_t(rank)], input, unused);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure && !helpers_.failure) helpers_.failure = failure;
    if (--helpers_.busy == 0) helpers_.done.notify_one();
  }
}

void PipelineStage::forward(const ForwardBatch& batch, std::span<const float> input, std::vector<float>& output,
                            std::uint64_t round) {
  if (kv_.empty()) throw Error("forward before the KV cache was created");
  for (const auto& c : collectives_) c->begin_round(round);  // the helpers wait for the wake below
  {
    std::lock_guard lock(helpers_.mutex);
    helpers_.batch = &batch;
    helpers_.input = input;
    helpers_.failure = nullptr;
    helpers_.busy = tensor_shards() - 1;
    ++helpers_.round;
  }
  helpers_.wake.notify_all();
  std::exception_ptr failure;
  try {
    shards_.front()->forward_stage(batch, *kv_.front(), input, output);
  } catch (...) {
    failure = std::current_exception();
  }
  std::unique_lock lock(helpers_.mutex);
  helpers_.done.wait(lock, [&] { return helpers_.busy == 0; });
  if (!failure) failure = helpers_.failure;
  if (failure) std::rethrow_exception(failure);
}

std::shared_ptr<PipelineStage> sharded_stage(const std::vector<std::shared_ptr<Collective>>& collectives,
                                             const ShardLoader& load) {
  return sharded_stage(0, std::max<int>(1, int(collectives.size())), collectives, load);
}

std::shared_ptr<PipelineStage> sharded_stage(int first_rank, int degree,
                                             const std::vector<std::shared_ptr<Collective>>& collectives,
                                             const ShardLoader& load) {
  std::vector<std::shared_ptr<LlamaModel>> models;
  const int held = std::max<int>(1, int(collectives.size()));
  for (int i = 0; i < held; ++i) {
    models.push_back(load({first_rank + i, degree}));
    if (degree > 1) models.back()->use_collective(collectives[std::size_t(i)]);
  }
  return std::make_shared<PipelineStage>(std::move(models), degree > 1 ? collectives : std::vector<std::shared_ptr<Collective>>{});
}

StageLlm::StageLlm(std::shared_ptr<PipelineStage> stage) : stage_(std::move(stage)) {
  if (stage_->first_layer() != 0 || !stage_->is_last_stage()) throw Error("StageLlm needs the whole model in one stage");
}

}  // namespace banyan
