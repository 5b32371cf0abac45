#pragma once
// The messages Banyan's actors exchange and the atoms that name commands. Every type has an
// `inspect`; add_message_types announces them all to CAF (needed for the ones that cross nodes).
#include <caf/all.hpp>

#include "actors/message_types.hpp"

namespace banyan {

// ForwardBatch lives in model/ (no CAF there); its inspect sits here, found by ADL.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ForwardBatch& x) {
  return f(caf::meta::type_name("banyan.ForwardBatch"), x.tokens, x.positions, x.slots, x.cache_rows, x.visible,
           x.tree_masks, x.logit_rows);
}

}  // namespace banyan

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
typename Inspector::result_type inspect(Inspector& f, KvMoves& x) {
  return f(caf::meta::type_name("banyan.KvMoves"), x.slot, x.from, x.to);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageForward& x) {
  return f(caf::meta::type_name("banyan.StageForward"), x.batch, x.activations, x.kv_moves);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageLogits& x) {
  return f(caf::meta::type_name("banyan.StageLogits"), x.logits);
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
using kv_cache_atom = caf::atom_constant<caf::atom("kvcache")>;
using step_atom = caf::atom_constant<caf::atom("step")>;

// Announces every message type above to an actor system's configuration.
void add_message_types(caf::actor_system_config& config);

}  // namespace banyan::actors
