#pragma once
// The scheduler actor of one served model.
#include <caf/all.hpp>

#include "actors/generations.hpp"
#include "actors/interfaces.hpp"
#include "engine/engine.hpp"

namespace banyan::actors {

// Spawns the scheduler on a thread of its own: a step blocks it while the backend's pool
// computes, and the actor system's shared workers must stay free for the other actors.
// Messages that arrive during a step are handled before the next one. `engine` must outlive
// the actor, and so must `gauges` when given (the scheduler writes them after every step).
scheduler_actor spawn_scheduler(caf::actor_system& system, Engine& engine, SchedulerGauges* gauges = nullptr);

}  // namespace banyan::actors
