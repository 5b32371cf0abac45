#include "actors/messages.hpp"

namespace banyan::actors {

void add_message_types(caf::actor_system_config& config) {
  config.add_message_type<GenerateRequest>("banyan.GenerateRequest");
  config.add_message_type<TokenChunk>("banyan.TokenChunk");
  config.add_message_type<StepResult>("banyan.StepResult");
  config.add_message_type<RequestDone>("banyan.RequestDone");
}

}  // namespace banyan::actors
