#include "actors/messages.hpp"

#include "actors/interfaces.hpp"

namespace banyan::actors {

void configure_actor_system(caf::actor_system_config& config) {
  config.set("scheduler.policy", caf::atom("sharing"));
  config.add_message_type<GenerateRequest>("banyan.GenerateRequest");
  config.add_message_type<TokenChunk>("banyan.TokenChunk");
  config.add_message_type<StepResult>("banyan.StepResult");
  config.add_message_type<TextGenerateRequest>("banyan.TextGenerateRequest");
  config.add_message_type<TextChunk>("banyan.TextChunk");
  // Actor handles that cross nodes inside messages must be announced too, or the remote side
  // answers `unexpected_message`.
  config.add_message_type<request_actor>("banyan.request_actor");
  config.add_message_type<llm_stage_actor>("banyan.llm_stage_actor");
  config.add_message_type<std::vector<std::int32_t>>("banyan.int32s");
  config.add_message_type<RequestDone>("banyan.RequestDone");
  config.add_message_type<ForwardBatch>("banyan.ForwardBatch");
  config.add_message_type<KvMoves>("banyan.KvMoves");
  config.add_message_type<KvLayout>("banyan.KvLayout");
  config.add_message_type<BulkRef>("banyan.BulkRef");
  config.add_message_type<StageForward>("banyan.StageForward");
  config.add_message_type<StageLogits>("banyan.StageLogits");
  config.add_message_type<SsmWork>("banyan.SsmWork");
  config.add_message_type<SsmTrees>("banyan.SsmTrees");
  config.add_message_type<MemoryReport>("banyan.MemoryReport");
}

}  // namespace banyan::actors
