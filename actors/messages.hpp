#pragma once
// The messages Banyan's actors exchange and the atoms that name commands. Every type has an
// `inspect`; add_message_types announces them all to CAF (needed for the ones that cross nodes).
#include <caf/all.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace banyan::actors {

// One generation, as a client asks for it (token ids: the gateway tokenizes).
struct GenerateRequest {
  std::vector<std::int32_t> prompt;
  std::int32_t max_new_tokens = 128;
  float temperature = 0;  // 0: greedy
  float top_p = 1;
  std::int32_t top_k = 0;
  std::uint64_t seed = 0;
};

// Tokens one scheduler step committed for one request.
struct TokenChunk {
  std::uint64_t request = 0;
  std::vector<std::int32_t> tokens;
};

// The end of a request: why it ended and what it cost.
struct RequestDone {
  std::uint64_t request = 0;
  std::string finish_reason;  // stop, length, cancelled, error
  std::string error;          // why it failed, when it did
  std::int32_t prompt_tokens = 0;
  std::int32_t generated_tokens = 0;
  std::int32_t llm_steps = 0;
  double accepted_per_step = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, GenerateRequest& x) {
  return f(caf::meta::type_name("banyan.GenerateRequest"), x.prompt, x.max_new_tokens, x.temperature, x.top_p, x.top_k,
           x.seed);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenChunk& x) {
  return f(caf::meta::type_name("banyan.TokenChunk"), x.request, x.tokens);
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
