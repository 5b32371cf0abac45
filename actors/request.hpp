#pragma once
// The request actor: one generation, from a client's point of view.
#include <caf/all.hpp>

#include "actors/interfaces.hpp"

namespace banyan::actors {

// Spawns the actor of one generation: it queues `request` at `scheduler` and forwards every
// TokenChunk, then the RequestDone, to `client`, then ends. Sending it a cancel_atom cancels the
// generation (the RequestDone still follows); so does `client` going away.
request_actor spawn_request(caf::actor_system& system, scheduler_actor scheduler, GenerateRequest request,
                            caf::actor client);

}  // namespace banyan::actors
