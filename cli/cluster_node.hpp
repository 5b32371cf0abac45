#pragma once
// One node of a cluster (`banyan serve --node NAME --config cluster.yaml`): which stages of the
// LLM it holds, where each run of them passes its output, and which nodes the head watches; and
// running a node that holds only stages (a worker, or `banyan stage`).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/node.hpp"
#include "cli/model_setup.hpp"
#include "config/cluster_config.hpp"

namespace banyan::cli {

struct ClusterRole {
  config::ClusterConfig cluster;
  config::NodeConfig node;
  bool head = false;
  std::vector<config::StagePlacement> placement;
  std::vector<config::StageRunPlan> runs;
  std::vector<int> followed;  // stages it holds tensor shards of for another node (followed_stages)
};

// `node`'s part of the cluster, placed against the model's config. Throws ConfigError for an
// unknown node or a layout that cannot run.
ClusterRole cluster_role(config::ClusterConfig cluster, const std::string& node);
// The stages this node loads: those of its runs in order, then those it follows. The shards of
// a stage spread over nodes sum through a ring over `bulk` (this process's data plane), giving
// up on a pass as soon as `health` has a problem (a node it needs is gone).
std::vector<StageLoad> stage_loads(const ClusterRole& role, const std::shared_ptr<actors::Bulk>& bulk,
                                   const std::shared_ptr<actors::ClusterHealth>& health);
// The runs to start, from the stage models loaded for stage_loads(), in that order.
std::vector<actors::StageRun> stage_runs(const ClusterRole& role, std::vector<std::shared_ptr<PipelineStage>> stages);
// Every node but this one: the head watches them all.
std::vector<actors::NodeAddress> other_nodes(const ClusterRole& role);

// Where a node listens: its node actor on bind:port (0: a free port), its data plane (when
// data_port >= 0; 0: a free port) on bind:data_port; others reach both at `host`.
struct NodeListen {
  std::string host, bind;
  int port = 0, data_port = -1;
  std::string ucx_interface;  // empty: UCX chooses
};
// `role`'s node: where its config says.
NodeListen listen_of(const ClusterRole& role);
// This process's data plane, or none when `listen` has no data port.
std::shared_ptr<actors::Bulk> make_data_plane(const NodeListen& listen);

using RunsOf = std::function<std::vector<actors::StageRun>(std::vector<std::shared_ptr<PipelineStage>>)>;
// Loads the stages `choice` names, starts them (arranged by `runs`) as node `name` where
// `listen` says, with `bulk` as its data plane (if any) and its links' findings in `health` (none:
// its own), prints where once ready, and serves until SIGTERM or SIGINT.
int serve_stage_node(const std::string& name, const ModelChoice& choice, const RunsOf& runs, const NodeListen& listen,
                     std::shared_ptr<actors::Bulk> bulk, std::shared_ptr<actors::ClusterHealth> health = nullptr);

}  // namespace banyan::cli
