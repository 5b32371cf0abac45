#include "actors/llm_stage.hpp"

#include <functional>
#include <random>

#include "actors/weak_handle.hpp"
#include "model/error.hpp"

namespace banyan::actors {

namespace {

// The answers of a stage's tensor shards in other processes to one request: `then` runs once
// all have come, with the first error (none: all fine).
struct ShardAnswers {
  std::size_t left = 0;
  caf::error failure;
  std::function<void(caf::error)> then;
  void answer(caf::error e = {}) {
    if (e && !failure) failure = std::move(e);
    if (--left == 0) then(failure);
  }
};

struct StageState {
  StageState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  std::shared_ptr<PipelineStage> stage;
  bool has_kv = false;
  llm_stage_actor next;  // the next stage, or the link to it; none for the last stage
  std::vector<llm_stage_actor> shard_links;  // to its tensor shards in other processes, when it leads them
  std::uint64_t round = 0;  // the last forward's, for those shards' collectives
  std::vector<float> output;

  std::string layers() const { return layers_text(stage->layers()); }
  // Sends `xs` to the shards elsewhere; what they answer goes to the result's `then`.
  template <class Answer, class... Ts>
  std::shared_ptr<ShardAnswers> ask_shards(llm_stage_actor::stateful_pointer<StageState> self, Ts... xs) {
    auto answers = std::make_shared<ShardAnswers>();
    answers->left = shard_links.size();
    for (const auto& link : shard_links)
      self->request(link, caf::infinite, xs...)
          .then([answers](Answer) { answers->answer(); }, [answers](caf::error& e) { answers->answer(std::move(e)); });
    return answers;
  }
};
using StagePointer = llm_stage_actor::stateful_pointer<StageState>;

// Runs the forward pass on the stage; returns why it failed, or nothing.
std::string compute(StageState& st, const StageForward& f) {
  try {
    for (const auto& m : f.kv_moves) {
      std::vector<std::pair<int, int>> from_to;
      for (std::size_t i = 0; i < m.from.size(); ++i) from_to.emplace_back(m.from[i], m.to[i]);
      st.stage->move_kv_rows(m.slot, from_to, m.blocks);
    }
    st.stage->forward(f.batch, f.activations, st.output, f.round);
  } catch (const std::exception& e) {
    return st.layers() + ": " + e.what();
  }
  return {};
}

llm_stage_actor::behavior_type llm_stage(StagePointer self, std::shared_ptr<PipelineStage> stage, llm_stage_actor next,
                                         std::vector<llm_stage_actor> shard_links) {
  self->state.stage = std::move(stage);
  self->state.next = std::move(next);
  self->state.shard_links = std::move(shard_links);
  self->state.round = std::random_device()();  // a restarted stage's rounds differ from its last life's
  return {
      [=](StageForward& f) -> caf::result<StageLogits> {
        auto& st = self->state;
        if (!st.has_kv) return caf::make_error(caf::sec::runtime_error, "forward before the KV cache was created");
        std::shared_ptr<ShardAnswers> shards;
        if (!st.shard_links.empty()) {  // the shards elsewhere compute the same pass, summing with these: they get it first
          f.round = ++st.round;
          shards = st.ask_shards<StageLogits>(self, StageForward{f.batch, f.activations, f.kv_moves, {}, f.round});
        }
        const std::string failure = compute(st, f);
        auto promise = self->make_response_promise<StageLogits>();
        // Once the shards elsewhere answered, if any: the logits, or the output passed on.
        auto finish = [=, f = std::move(f)](caf::error shard_failure) mutable {
          // A lost shard is the cause; this stage's own failure (a sum that gave up) follows from it.
          auto& state = self->state;
          if (shard_failure) {
            promise.deliver(std::move(shard_failure));
          } else if (!failure.empty()) {
            promise.deliver(caf::make_error(caf::sec::runtime_error, failure));
          } else if (!state.stage->leads()) {
            promise.deliver(StageLogits{});  // shards of a stage elsewhere: its leader answers for them
          } else if (!state.next) {
            promise.deliver(StageLogits{std::move(state.output)});
          } else {
            f.activations.swap(state.output);
            promise.delegate(state.next, std::move(f));  // the last stage answers the first's sender
          }
        };
        if (shards)
          shards->then = std::move(finish);
        else
          finish({});
        return promise;
      },
      [=](kv_cache_atom a, const KvLayout& layout) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        std::uint64_t bytes = 0;
        try {
          bytes = st.stage->create_kv_cache(layout);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, st.layers() + ": " + e.what());
        }
        st.has_kv = true;
        auto promise = self->make_response_promise<std::uint64_t>();
        auto finish = [=](caf::error failure) mutable {
          if (failure)
            promise.deliver(std::move(failure));
          else if (self->state.next)
            promise.delegate(self->state.next, a, layout);
          else
            promise.deliver(bytes);
        };
        if (st.shard_links.empty())
          finish({});
        else
          st.ask_shards<std::uint64_t>(self, a, layout)->then = std::move(finish);
        return promise;
      },
      [=](layers_atom) {
        return std::make_tuple(std::int32_t(self->state.stage->first_layer()), std::int32_t(self->state.stage->end_layer()));
      },
  };
}

}  // namespace

std::vector<llm_stage_actor> spawn_llm_stages(caf::actor_system& system, std::vector<std::shared_ptr<PipelineStage>> stages,
                                              llm_stage_actor after, std::vector<std::vector<llm_stage_actor>> shard_links) {
  if (!after && !stages.empty() && stages.back()->leads() && !stages.back()->is_last_stage())
    throw Error("the last pipeline stage ends at layer " + std::to_string(stages.back()->end_layer()) +
                " but the model has more: give the stage that follows");
  shard_links.resize(stages.size());
  std::vector<llm_stage_actor> handles(stages.size());
  llm_stage_actor next = std::move(after);
  for (std::size_t i = stages.size(); i-- > 0;) {
    handles[i] = system.spawn<caf::detached>(llm_stage, std::move(stages[i]), next, std::move(shard_links[i]));
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

void StagedLlm::create_kv_cache(const KvLayout& layout) {
  caf::scoped_actor self{system_};
  self->request(strong(first_), caf::infinite, kv_cache_atom::value, layout)
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
  try {
    const LogitRows rows(logits, config_.vocab_size, batch.summary_k, batch.nucleus_temperature, batch.nucleus_top_p);
    if (rows.size() != batch.logit_rows.size()) throw Error(std::to_string(rows.size()) + " rows");
  } catch (const std::exception& e) {
    throw Error("the LLM pipeline answered " + std::to_string(logits.size()) + " logits for " +
                std::to_string(batch.logit_rows.size()) + " rows: " + e.what());
  }
}

void StagedLlm::move_kv_rows(int slot, std::span<const std::pair<int, int>> from_to, std::span<const std::int32_t> blocks) {
  KvMoves m{slot, {}, {}, {blocks.begin(), blocks.end()}};
  for (const auto& [from, to] : from_to) m.from.push_back(from), m.to.push_back(to);
  pending_moves_.push_back(std::move(m));
}

}  // namespace banyan::actors
