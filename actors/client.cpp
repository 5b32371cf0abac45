#include "actors/client.hpp"

#include <caf/io/all.hpp>

#include "actors/request.hpp"
#include "model/error.hpp"

namespace banyan::actors {

void configure_for_network(caf::actor_system_config& config) {
  add_message_types(config);
  config.load<caf::io::middleman>();
}

std::uint16_t publish_scheduler(caf::actor_system& system, const scheduler_actor& scheduler, std::uint16_t port,
                                const std::string& host) {
  auto bound = system.middleman().publish(scheduler, port, host.c_str());
  if (!bound)
    throw Error("cannot serve the scheduler at " + host + ":" + std::to_string(port) + ": " + system.render(bound.error()));
  return *bound;
}

Client::Client(caf::actor_system& system, const std::string& host, std::uint16_t port)
    : system_(system), address_(host + ":" + std::to_string(port)) {
  auto remote = system.middleman().remote_actor<scheduler_actor>(host, port);
  if (!remote) throw Error("no Banyan scheduler at " + address_ + ": " + system.render(remote.error()));
  scheduler_ = *remote;
}

Client::Result Client::generate(GenerateRequest request, const TokenCallback& on_tokens, std::chrono::seconds silence) {
  caf::scoped_actor self{system_};
  auto generation = spawn_request(system_, scheduler_, std::move(request), self);
  Result result;
  for (bool ended = false; !ended;)
    self->receive(
        [&](TokenChunk& c) {
          result.tokens.insert(result.tokens.end(), c.tokens.begin(), c.tokens.end());
          if (on_tokens) on_tokens(c.tokens);
        },
        [&](RequestDone& d) {
          result.done = std::move(d);
          ended = true;
        },
        caf::after(silence) >> [&] {
          self->send(generation, cancel_atom::value);
          result.done.finish_reason = "error";
          result.done.error = "no answer from " + address_ + " for " + std::to_string(silence.count()) + " s";
          ended = true;
        });
  return result;
}

}  // namespace banyan::actors
