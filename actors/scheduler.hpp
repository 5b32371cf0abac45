#pragma once
// The scheduler actor of one served model.
#include <caf/all.hpp>

#include "actors/generations.hpp"
#include "actors/interfaces.hpp"
#include "engine/engine.hpp"

namespace banyan::actors {

// Spawns the scheduler (on the actor system's shared workers: it never blocks) with its step
// worker (a thread of its own: a step blocks while the backend's pool computes). Messages that
// arrive during a step are applied right after it. `engine` must outlive the actors, and so must
// `gauges` when given (the scheduler writes them after every step).
scheduler_actor spawn_scheduler(caf::actor_system& system, Engine& engine, SchedulerGauges* gauges = nullptr);

}  // namespace banyan::actors
