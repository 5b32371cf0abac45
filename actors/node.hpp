#pragma once
// This process's part of the LLM pipeline, and of a cluster: runs of consecutive stage actors,
// each passing its output on to the next run, through a stage link when that run is on another
// node; watch links to the other nodes (the head's); and the node actor that other processes
// reach this one through. The same stage code runs whether its neighbour is local or remote.
#include <caf/all.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/cluster_health.hpp"
#include "actors/cluster_memory.hpp"
#include "actors/interfaces.hpp"
#include "actors/node_link.hpp"
#include "engine/pipeline_stage.hpp"

namespace banyan::actors {

// A stage in another process: the node that holds it and the layer it starts at.
struct RemoteStage {
  NodeAddress node;
  int first_layer = 0;
};

struct StageRun {
  std::vector<std::shared_ptr<PipelineStage>> stages;  // consecutive layer ranges, the first first; none: only a link
  std::optional<RemoteStage> next;                   // where the run's output goes; none: the model ends here
  // Per stage (or none): the nodes holding the stage's other tensor shards, for a stage that
  // leads shards spread over nodes. A run of one stage that does not lead (its shard 0 is
  // elsewhere) only answers its leader, reached through this node's node actor.
  std::vector<std::vector<NodeAddress>> shard_nodes;
  // For such a run: the leader's node, which this node heartbeats (spawn_node_heartbeat) so that
  // its shards give up a pass the leader can no longer finish.
  std::optional<NodeAddress> leader;
};

class Node {
 public:
  // With `bulk` (this process's data plane), activations and logits to and from other nodes
  // that have one travel over it rather than inside the messages. Its links record what they
  // find wrong in `health` (none: a health of its own). The node actor answers for `memory`,
  // this process's memory actor (none: an empty report).
  Node(caf::actor_system& system, std::string name, std::vector<StageRun> runs, std::vector<NodeAddress> watched = {},
       std::shared_ptr<Bulk> bulk = nullptr, std::shared_ptr<ClusterHealth> health = nullptr, memory_actor memory = {});
  ~Node();  // stops every actor it started
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // The first actor of the run that starts at `layer`: its first stage, or the link of a run
  // that is only a link. Throws Error when no run starts there.
  llm_stage_actor run_at(int layer) const;
  // Serves the node actor on host:port (0: a free one); returns the port.
  int publish(const std::string& host, int port);
  const std::shared_ptr<ClusterHealth>& health() const { return health_; }
  // What the watched nodes last reported of their memory.
  const std::shared_ptr<ClusterMemory>& watched_memory() const { return watched_memory_; }
  // Waits until no link has a problem; every 5 s tells `waiting` what it still waits for.
  // Throws Error listing the problems after `timeout`.
  void wait_until_joined(std::chrono::seconds timeout, const std::function<void(const std::vector<std::string>&)>& waiting);

 private:
  caf::actor_system& system_;
  std::shared_ptr<ClusterHealth> health_;
  std::shared_ptr<ClusterMemory> watched_memory_ = std::make_shared<ClusterMemory>();
  std::vector<std::pair<int, llm_stage_actor>> runs_;  // each run's first layer and first actor
  std::vector<llm_stage_actor> stages_;
  std::vector<node_link_actor> links_;
  node_actor node_;
  int published_port_ = -1;
};

// The first layers of the stages the node at host:port holds (its node actor must be published
// there: `banyan stage`, `banyan serve --node`). Throws Error saying what failed.
std::vector<int> node_stage_layers(caf::actor_system& system, const std::string& host, int port);

}  // namespace banyan::actors
