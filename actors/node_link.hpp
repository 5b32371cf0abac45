#pragma once
// A link from this process to another node of a cluster. It connects to the node's node actor,
// reconnects after the node went away (a restarted node rejoins), sends it a heartbeat every
// second, and records in ClusterHealth what is wrong: refused, gone, or silent (a stopped process
// or a dropped network link answers no heartbeat although its connection stays open).
//  - A stage link passes a stage's output on to the node's stage that starts at `first_layer`
//    (or a stage's input to its tensor shards there), and fails what it carries the moment the
//    node is found gone or silent, never waiting on a node that cannot answer. A new stage gets
//    the KV cache the old one was asked to create.
//  - A watch link (the head's view of a node it may not talk to otherwise) carries nothing and
//    copies what the node itself reports: its problems, and what its memory holds.
#include <caf/all.hpp>
#include <memory>
#include <string>

#include "actors/bulk.hpp"
#include "actors/cluster_health.hpp"
#include "actors/cluster_memory.hpp"
#include "actors/interfaces.hpp"

namespace banyan::actors {

struct NodeAddress {
  std::string node;  // its name in the cluster config; empty outside a cluster
  std::string host;
  int port = 0;  // where its node actor is published
  std::string describe() const {
    const std::string where = host + ":" + std::to_string(port);
    return node.empty() ? "the node at " + where : "node " + node + " (" + where + ")";
  }
};

// `what` says what it leads to ("the stage after layers 0-2"), for the errors. With `bulk` (this
// process's data plane) and one at the node, activations and logits travel over the data planes.
node_link_actor spawn_stage_link(caf::actor_system& system, NodeAddress to, int first_layer, std::string what,
                                 std::shared_ptr<ClusterHealth> health, std::shared_ptr<Bulk> bulk = nullptr);
node_link_actor spawn_node_watch(caf::actor_system& system, NodeAddress to, std::shared_ptr<ClusterHealth> health,
                                 std::shared_ptr<ClusterMemory> memory);
// A watch link that records only whether the node answers, not what it reports: a node holding
// tensor shards watches the node that leads their stage so (two nodes watching each other's
// reports would copy them back and forth).
node_link_actor spawn_node_heartbeat(caf::actor_system& system, NodeAddress to, std::shared_ptr<ClusterHealth> health);

}  // namespace banyan::actors
