#include "actors/llm_stage.hpp"

#include "model/error.hpp"

namespace banyan::actors {

namespace {

struct StageState {
  StageState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  std::shared_ptr<LlamaModel> model;
  std::unique_ptr<KvCache> kv;
  llm_stage_actor next;  // none for the last stage
  std::vector<float> output;
};
using StagePointer = llm_stage_actor::stateful_pointer<StageState>;

llm_stage_actor::behavior_type llm_stage(StagePointer self, std::shared_ptr<LlamaModel> model, llm_stage_actor next) {
  self->state.model = std::move(model);
  self->state.next = std::move(next);
  return {
      [=](StageForward& f) -> caf::result<StageLogits> {
        auto& st = self->state;
        if (!st.kv) return caf::make_error(caf::sec::runtime_error, "forward before the KV cache was created");
        for (const auto& m : f.kv_moves) {
          std::vector<std::pair<int, int>> from_to;
          for (std::size_t i = 0; i < m.from.size(); ++i) from_to.emplace_back(m.from[i], m.to[i]);
          st.model->backend().copy_kv_rows(*st.kv, m.slot, from_to);
        }
        try {
          st.model->forward_stage(f.batch, *st.kv, f.activations, st.output);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error,
                                 "layers " + std::to_string(st.model->first_layer()) + "-" +
                                     std::to_string(st.model->end_layer() - 1) + ": " + e.what());
        }
        if (!st.next) return StageLogits{std::move(st.output)};
        f.activations.swap(st.output);
        return self->delegate(st.next, std::move(f));  // the last stage answers the first's sender
      },
      [=](kv_cache_atom, std::int32_t slots, std::int32_t capacity) {
        self->state.kv = self->state.model->create_kv_cache(slots, capacity);
        return std::uint64_t(self->state.kv->bytes());
      },
  };
}

}  // namespace

std::vector<llm_stage_actor> spawn_llm_stages(caf::actor_system& system, std::vector<std::shared_ptr<LlamaModel>> stages) {
  std::vector<llm_stage_actor> handles(stages.size());
  llm_stage_actor next;
  for (std::size_t i = stages.size(); i-- > 0;) {
    handles[i] = system.spawn<caf::detached>(llm_stage, std::move(stages[i]), next);
    next = handles[i];
  }
  return handles;
}

namespace {

llm_stage_actor strong(const caf::weak_actor_ptr& stage) {
  auto handle = caf::actor_cast<llm_stage_actor>(stage.lock());
  if (!handle) throw Error("the LLM pipeline's stage actors are gone");
  return handle;
}

}  // namespace

StagedLlm::StagedLlm(caf::actor_system& system, std::vector<llm_stage_actor> stages, const LlamaConfig& config)
    : system_(system), config_(config) {
  if (stages.empty()) throw Error("a pipeline needs at least one stage");
  for (auto& s : stages) stages_.push_back(caf::actor_cast<caf::weak_actor_ptr>(s));
}

void StagedLlm::create_kv_cache(int slots, int capacity) {
  caf::scoped_actor self{system_};
  for (auto& stage : stages_)
    self->request(strong(stage), caf::infinite, kv_cache_atom::value, std::int32_t(slots), std::int32_t(capacity))
        .receive([](std::uint64_t) {},
                 [&](caf::error& e) { throw Error("creating a stage's KV cache: " + system_.render(e)); });
}

void StagedLlm::forward(const ForwardBatch& batch, std::vector<float>& logits) {
  StageForward f{batch, {}, std::move(pending_moves_)};
  pending_moves_.clear();
  caf::scoped_actor self{system_};
  self->request(strong(stages_.front()), caf::infinite, std::move(f))
      .receive([&](StageLogits& out) { logits = std::move(out.logits); },
               [&](caf::error& e) { throw Error("the LLM pipeline failed: " + system_.render(e)); });
}

void StagedLlm::move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to) {
  KvMoves m{slot, {}, {}};
  for (const auto& [from, to] : from_to) m.from.push_back(from), m.to.push_back(to);
  pending_moves_.push_back(std::move(m));
}

}  // namespace banyan::actors
