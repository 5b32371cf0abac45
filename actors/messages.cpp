#include "actors/messages.hpp"

#include "actors/interfaces.hpp"

namespace banyan::actors {

void add_message_types(caf::actor_system_config& config) {
  config.add_message_type<GenerateRequest>("banyan.GenerateRequest");
  config.add_message_type<TokenChunk>("banyan.TokenChunk");
  config.add_message_type<RequestDone>("banyan.RequestDone");
  // Handles that travel inside messages are message types too.
  config.add_message_type<request_actor>("banyan.request_actor");
}

}  // namespace banyan::actors
