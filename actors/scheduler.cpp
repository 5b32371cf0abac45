#include "actors/scheduler.hpp"

#include <map>

namespace banyan::actors {

namespace {

struct SchedulerState {
  SchedulerState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  Engine* engine = nullptr;
  SchedulerGauges* gauges = nullptr;
  std::map<RequestId, request_actor> clients;  // requests not yet reported done
  bool step_queued = false;
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
  st.gauges->steps = st.engine->stats().steps;
}

// One step message in the mailbox at a time, behind whatever else has arrived.
void queue_step(SchedulerPointer self) {
  auto& st = self->state;
  publish_gauges(st);
  if (st.step_queued || !st.engine->requests().has_work()) return;
  st.step_queued = true;
  self->send(self, step_atom::value);
}

void step(SchedulerPointer self) {
  auto& st = self->state;
  st.step_queued = false;
  try {
    st.engine->step([&](RequestId id, std::span<const std::int32_t> tokens) {
      if (auto it = st.clients.find(id); it != st.clients.end())
        self->send(it->second, TokenChunk{id, {tokens.begin(), tokens.end()}});
    });
  } catch (const std::exception& e) {
    // The model failed under these requests: they end with the reason, the scheduler goes on.
    for (const auto& [id, client] : st.clients)
      if (!st.engine->requests().request(id).done()) st.engine->requests().fail(id, e.what());
  }
  report_done(self);
  queue_step(self);
}

scheduler_actor::behavior_type scheduler(SchedulerPointer self, Engine* engine, SchedulerGauges* gauges) {
  self->state.engine = engine;
  self->state.gauges = gauges;
  return {
      [=](GenerateRequest& r, request_actor client) -> std::uint64_t {
        const RequestId id = engine->submit(std::move(r.prompt), generation_config(r));
        self->state.clients.emplace(id, std::move(client));
        report_done(self);  // a prompt that can never run has failed at once
        queue_step(self);
        return id;
      },
      [=](cancel_atom, std::uint64_t id) {
        if (self->state.clients.count(id) && engine->cancel(id)) report_done(self);
        queue_step(self);  // also brings the gauges up to date
      },
      [=](step_atom) { step(self); },
  };
}

}  // namespace

scheduler_actor spawn_scheduler(caf::actor_system& system, Engine& engine, SchedulerGauges* gauges) {
  return system.spawn<caf::detached>(scheduler, &engine, gauges);
}

}  // namespace banyan::actors
