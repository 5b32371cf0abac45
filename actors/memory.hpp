#pragma once
// memory: one per process that holds models. It owns the node's weights (engine/node_weights:
// the LLM or its stages here, the SSMs, their backends, and the paging of the offloaded ones
// under the node's one budget), hands them to the actors of this process that compute with
// them, and reports what lies in each memory tier — to /metrics here, and through the node
// actor to the head of a cluster. Compute reads streamed weights from the paging directly
// (WeightPaging::acquire, a lock and a wait): a message per layer would add a hop to every
// layer of every step and change nothing about what is read when.
#include <caf/all.hpp>
#include <memory>

#include "actors/interfaces.hpp"
#include "engine/node_weights.hpp"

namespace banyan::actors {

memory_actor spawn_memory(caf::actor_system& system, std::shared_ptr<NodeWeights> weights);

// The node's weights from `memory`, asked from a thread that is not an actor's (setting up).
std::shared_ptr<NodeWeights> weights_of(caf::actor_system& system, const memory_actor& memory);
// Its report, or an empty one when it does not answer within a second.
MemoryReport report_of(caf::actor_system& system, const memory_actor& memory);

}  // namespace banyan::actors
