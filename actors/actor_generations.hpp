#pragma once
// Generations served by actors: each one is a request actor at the scheduler, whose client is a
// small actor that hands the tokens and the end to the caller's callbacks.
#include <memory>

#include "actors/generations.hpp"
#include "actors/interfaces.hpp"

namespace banyan::actors {

std::unique_ptr<Generations> make_actor_generations(caf::actor_system& system, scheduler_actor scheduler);

}  // namespace banyan::actors
