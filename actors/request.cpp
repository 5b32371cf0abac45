#include "actors/request.hpp"

#include <optional>

namespace banyan::actors {

namespace {

struct RequestActorState {
  RequestActorState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  std::optional<std::uint64_t> id;  // known once the scheduler has queued the request
  bool cancel_wanted = false;       // a cancel that came before the id
};
using RequestPointer = request_actor::stateful_pointer<RequestActorState>;

void cancel(RequestPointer self, const scheduler_actor& scheduler) {
  if (self->state.id)
    self->send(scheduler, cancel_atom::value, *self->state.id);
  else
    self->state.cancel_wanted = true;
}

request_actor::behavior_type request(RequestPointer self, scheduler_actor scheduler, GenerateRequest r,
                                     caf::actor client) {
  self->monitor(client);
  self->set_down_handler([=](caf::down_msg&) {  // nobody is listening any more
    cancel(self, scheduler);
    self->quit();
  });
  self->request(scheduler, caf::infinite, std::move(r), caf::actor_cast<request_actor>(self))
      .then(
          [=](std::uint64_t id) {
            self->state.id = id;
            if (self->state.cancel_wanted) self->send(scheduler, cancel_atom::value, id);
          },
          [=](caf::error& e) {
            RequestDone d;
            d.finish_reason = "error";
            d.error = "the scheduler is gone: " + self->system().render(e);
            caf::anon_send(client, std::move(d));
            self->quit();
          });
  return {
      [=](TokenChunk& c) { caf::anon_send(client, std::move(c)); },
      [=](RequestDone& d) {
        caf::anon_send(client, std::move(d));  // typed actors reach untyped clients anonymously
        self->quit();
      },
      [=](cancel_atom) { cancel(self, scheduler); },
  };
}

}  // namespace

request_actor spawn_request(caf::actor_system& system, scheduler_actor scheduler, GenerateRequest r,
                            caf::actor client) {
  return system.spawn(request, std::move(scheduler), std::move(r), std::move(client));
}

}  // namespace banyan::actors
