#include "actors/llm_stage.hpp"

#include "actors/weak_handle.hpp"
#include "model/error.hpp"

namespace banyan::actors {

namespace {

struct StageState {
  StageState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  std::shared_ptr<PipelineStage> stage;
  bool has_kv = false;
  llm_stage_actor next;  // the next stage, or the link to it; none for the last stage
  std::vector<float> output;

  std::string layers() const { return layers_text(stage->layers()); }
};
using StagePointer = llm_stage_actor::stateful_pointer<StageState>;

llm_stage_actor::behavior_type llm_stage(StagePointer self, std::shared_ptr<PipelineStage> stage, llm_stage_actor next) {
  self->state.stage = std::move(stage);
  self->state.next = std::move(next);
  return {
      [=](StageForward& f) -> caf::result<StageLogits> {
        auto& st = self->state;
        if (!st.has_kv) return caf::make_error(caf::sec::runtime_error, "forward before the KV cache was created");
        try {
          for (const auto& m : f.kv_moves) {
            std::vector<std::pair<int, int>> from_to;
            for (std::size_t i = 0; i < m.from.size(); ++i) from_to.emplace_back(m.from[i], m.to[i]);
            st.stage->move_kv_rows(m.slot, from_to);
          }
          st.stage->forward(f.batch, f.activations, st.output);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, st.layers() + ": " + e.what());
        }
        if (!st.next) return StageLogits{std::move(st.output)};
        f.activations.swap(st.output);
        return self->delegate(st.next, std::move(f));  // the last stage answers the first's sender
      },
      [=](kv_cache_atom a, std::int32_t slots, std::int32_t capacity) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        const std::size_t bytes = st.stage->create_kv_cache(slots, capacity);
        st.has_kv = true;
        if (st.next) return self->delegate(st.next, a, slots, capacity);
        return std::uint64_t(bytes);
      },
      [=](layers_atom) {
        return std::make_tuple(std::int32_t(self->state.stage->first_layer()), std::int32_t(self->state.stage->end_layer()));
      },
  };
}

}  // namespace

std::vector<llm_stage_actor> spawn_llm_stages(caf::actor_system& system, std::vector<std::shared_ptr<PipelineStage>> stages,
                                              llm_stage_actor after) {
  if (!after && !stages.empty() && !stages.back()->is_last_stage())
    throw Error("the last pipeline stage ends at layer " + std::to_string(stages.back()->end_layer()) +
                " but the model has more: give the stage that follows");
  std::vector<llm_stage_actor> handles(stages.size());
  llm_stage_actor next = std::move(after);
  for (std::size_t i = stages.size(); i-- > 0;) {
    handles[i] = system.spawn<caf::detached>(llm_stage, std::move(stages[i]), next);
    next = handles[i];
  }
  return handles;
}

namespace {

llm_stage_actor strong(const caf::weak_actor_ptr& stage) {
  return lock_weak<llm_stage_actor>(stage, "the LLM pipeline's stage actors are gone");
}

}  // namespace

StagedLlm::StagedLlm(caf::actor_system& system, const llm_stage_actor& first, const LlamaConfig& config)
    : system_(system), first_(caf::actor_cast<caf::weak_actor_ptr>(first)), config_(config) {
  if (!first) throw Error("a pipeline needs at least one stage");
}

void StagedLlm::create_kv_cache(int slots, int capacity) {
  caf::scoped_actor self{system_};
  self->request(strong(first_), caf::infinite, kv_cache_atom::value, std::int32_t(slots), std::int32_t(capacity))
      .receive([](std::uint64_t) {}, [&](caf::error& e) { throw Error("creating the stages' KV caches: " + system_.render(e)); });
}

void StagedLlm::forward(const ForwardBatch& batch, std::vector<float>& logits) {
  StageForward f{batch, {}, std::move(pending_moves_), {}};
  pending_moves_.clear();
  caf::scoped_actor self{system_};
  self->request(strong(first_), caf::infinite, std::move(f))
      .receive([&](StageLogits& out) { logits = std::move(out.logits); },
               [&](caf::error& e) { throw Error("the LLM pipeline failed: " + system_.render(e)); });
  // A stage in another process is another build, maybe of another model: check what came back.
  const std::size_t expected = batch.logit_rows.size() * std::size_t(config_.vocab_size);
  if (logits.size() != expected)
    throw Error("the LLM pipeline answered " + std::to_string(logits.size()) + " logits, expected " + std::to_string(expected));
}

void StagedLlm::move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to) {
  KvMoves m{slot, {}, {}};
  for (const auto& [from, to] : from_to) m.from.push_back(from), m.to.push_back(to);
  pending_moves_.push_back(std::move(m));
}

}  // namespace banyan::actors
