#pragma once
// The text service: what remote clients (banyan/client.hpp) reach on the actor port. It turns
// a text prompt into tokens with the served model's tokenizer, runs it as a request at the
// scheduler, and streams the tokens back with their text.
#include <caf/all.hpp>

#include "actors/interfaces.hpp"
#include "model/tokenizer.hpp"

namespace banyan::actors {

// `tokenizer` must outlive the actor.
text_service_actor spawn_text_service(caf::actor_system& system, scheduler_actor scheduler, const Tokenizer& tokenizer);

}  // namespace banyan::actors
