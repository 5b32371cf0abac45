#include "actors/scheduler.hpp"

#include <map>

namespace banyan::actors {

namespace {

// A submission that came while a step was running: applied when the step ends.
struct PendingSubmit {
  GenerateRequest request;
  request_actor client;
  caf::typed_response_promise<std::uint64_t> reply;
};

struct SchedulerState {
  SchedulerState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  Engine* engine = nullptr;
  SchedulerGauges* gauges = nullptr;
  step_worker_actor worker;
  std::map<RequestId, request_actor> clients;  // requests not yet reported done
  bool stepping = false;                       // the worker owns the engine until it answers
  std::vector<PendingSubmit> pending_submits;
  std::vector<std::uint64_t> pending_cancels;
};
using SchedulerPointer = scheduler_actor::stateful_pointer<SchedulerState>;

GenerationConfig generation_config(const GenerateRequest& r) {
  GenerationConfig c;
  c.max_new_tokens = r.max_new_tokens;
  c.sampling.temperature = r.temperature;
  c.sampling.top_p = r.top_p;
  c.sampling.top_k = r.top_k;
  c.sampling.seed = r.seed;
  c.speculate = r.speculate;
  return c;
}

RequestDone done_message(const Request& r) {
  RequestDone d;
  d.request = r.id;
  d.finish_reason = r.state == RequestState::failed ? "error" : std::string(finish_reason_name(r.finish));
  d.error = r.error;
  d.prompt_tokens = r.prompt_length;
  d.cached_prompt_tokens = r.stats.cached_prompt_tokens;
  d.generated_tokens = r.generated();
  d.llm_steps = r.stats.llm_steps;
  d.accepted_per_step = r.stats.mean_accepted();
  return d;
}

// Tells every request that ended (finished, failed, cancelled) and forgets it.
void report_done(SchedulerPointer self) {
  auto& st = self->state;
  for (auto it = st.clients.begin(); it != st.clients.end();) {
    const Request& r = st.engine->requests().request(it->first);
    if (!r.done()) {
      ++it;
      continue;
    }
    self->send(it->second, done_message(r));
    st.engine->requests().erase(it->first);
    it = st.clients.erase(it);
  }
}

void publish_gauges(SchedulerState& st) {
  if (!st.gauges) return;
  const RequestManager& m = st.engine->requests();
  st.gauges->queued = m.queued_count();
  st.gauges->active = m.active_count();
  st.gauges->slots = m.limits().max_requests_per_batch;
  if (const KvBlockPool* blocks = m.kv_blocks()) {
    st.gauges->kv_blocks = blocks->total_blocks();
    st.gauges->kv_blocks_used = blocks->total_blocks() - blocks->free_blocks();
    st.gauges->kv_blocks_cached = blocks->cached_blocks();
  }
  st.gauges->preemptions = m.preemptions();
  st.gauges->cached_tokens = m.cached_tokens();
  st.gauges->steps = st.engine->stats().steps;
}

std::uint64_t submit(SchedulerPointer self, GenerateRequest& r, request_actor client) {
  const RequestId id = self->state.engine->submit(std::move(r.prompt), generation_config(r));
  self->state.clients.emplace(id, std::move(client));
  return id;
}

void cancel(SchedulerPointer self, std::uint64_t id) {
  if (self->state.clients.count(id)) self->state.engine->cancel(id);
}

void step(SchedulerPointer self);

// Between steps (the engine is the scheduler's): applies what came meanwhile, reports the
// requests that ended, and starts the next step while there is work.
void between_steps(SchedulerPointer self) {
  auto& st = self->state;
  for (auto& p : st.pending_submits) p.reply.deliver(submit(self, p.request, std::move(p.client)));
  st.pending_submits.clear();
  for (auto id : st.pending_cancels) cancel(self, id);
  st.pending_cancels.clear();
  report_done(self);  // also a prompt that can never run: it failed at submit
  publish_gauges(st);
  if (st.engine->requests().has_work()) step(self);
}

void step(SchedulerPointer self) {
  auto& st = self->state;
  st.stepping = true;
  self->request(st.worker, caf::infinite, step_atom::value)
      .then(
          [=](StepResult& result) {
            auto& s = self->state;
            s.stepping = false;
            for (auto& c : result.chunks)
              if (auto it = s.clients.find(c.request); it != s.clients.end()) self->send(it->second, std::move(c));
            if (!result.error.empty())  // the model failed under these requests; the scheduler goes on
              for (const auto& [id, client] : s.clients)
                if (!s.engine->requests().request(id).done()) s.engine->requests().fail(id, result.error);
            between_steps(self);
          },
          [=](caf::error&) { self->quit(); });  // the worker is gone: so is this model's serving
}

step_worker_actor::behavior_type step_worker(step_worker_actor::pointer, Engine* engine) {
  return {
      [=](step_atom) {
        StepResult result;
        try {
          engine->step([&](RequestId id, std::span<const std::int32_t> tokens) {
            result.chunks.push_back({id, {tokens.begin(), tokens.end()}});
          });
        } catch (const std::exception& e) {
          result.error = e.what();
        }
        return result;
      },
  };
}

scheduler_actor::behavior_type scheduler(SchedulerPointer self, Engine* engine, SchedulerGauges* gauges) {
  auto& st = self->state;
  st.engine = engine;
  st.gauges = gauges;
  // Detached: a step blocks its thread while the backend's pool computes. Linked: it ends with
  // the scheduler, and the scheduler with it.
  st.worker = self->spawn<caf::detached + caf::linked>(step_worker, engine);
  return {
      [=](GenerateRequest& r, request_actor client) -> caf::result<std::uint64_t> {
        auto& s = self->state;
        if (s.stepping) {
          auto reply = self->make_response_promise<std::uint64_t>();
          s.pending_submits.push_back({std::move(r), std::move(client), reply});
          return reply;
        }
        const std::uint64_t id = submit(self, r, std::move(client));
        between_steps(self);
        return id;
      },
      [=](cancel_atom, std::uint64_t id) {
        auto& s = self->state;
        if (s.stepping) return s.pending_cancels.push_back(id);
        cancel(self, id);
        between_steps(self);
      },
  };
}

}  // namespace

scheduler_actor spawn_scheduler(caf::actor_system& system, Engine& engine, SchedulerGauges* gauges) {
  return system.spawn(scheduler, &engine, gauges);
}

}  // namespace banyan::actors
