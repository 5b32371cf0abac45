#pragma once
// The messages Banyan's actors exchange and the atoms that name commands. Every type has an
// `inspect`; add_message_types announces them all to CAF (needed for the ones that cross nodes).
#include <caf/all.hpp>

#include "actors/message_types.hpp"

namespace banyan::actors {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, GenerateRequest& x) {
  return f(caf::meta::type_name("banyan.GenerateRequest"), x.prompt, x.max_new_tokens, x.temperature, x.top_p, x.top_k,
           x.seed, x.speculate);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenChunk& x) {
  return f(caf::meta::type_name("banyan.TokenChunk"), x.request, x.tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TextGenerateRequest& x) {
  return f(caf::meta::type_name("banyan.TextGenerateRequest"), x.prompt, x.params);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TextChunk& x) {
  return f(caf::meta::type_name("banyan.TextChunk"), x.request, x.text, x.tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepResult& x) {
  return f(caf::meta::type_name("banyan.StepResult"), x.chunks, x.error);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RequestDone& x) {
  return f(caf::meta::type_name("banyan.RequestDone"), x.request, x.finish_reason, x.error, x.prompt_tokens,
           x.generated_tokens, x.llm_steps, x.accepted_per_step);
}

using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using step_atom = caf::atom_constant<caf::atom("step")>;

// Announces every message type above to an actor system's configuration.
void add_message_types(caf::actor_system_config& config);

}  // namespace banyan::actors
