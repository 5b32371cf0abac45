#pragma once
// The typed interfaces of the serving actors: every message each one accepts and what it answers.
#include <caf/all.hpp>

#include "actors/messages.hpp"

namespace banyan::actors {

// One per generation: forwards the scheduler's TokenChunks and its RequestDone to the client
// that asked. A cancel_atom from the client stops the generation.
using request_actor = caf::typed_actor<caf::reacts_to<TokenChunk>, caf::reacts_to<RequestDone>,
                                       caf::reacts_to<cancel_atom>>;

// One per served model: owns its requests and runs its steps (SSMs, then the LLM, then
// verification), streaming committed tokens to each request's actor.
using scheduler_actor = caf::typed_actor<
    // Queues a generation whose tokens go to the given request actor; answers its request id.
    caf::replies_to<GenerateRequest, request_actor>::with<std::uint64_t>,
    caf::reacts_to<cancel_atom, std::uint64_t>,
    // Runs one step (the scheduler sends it to itself while there is work).
    caf::reacts_to<step_atom>>;

}  // namespace banyan::actors
