#pragma once
// A cluster config (`banyan launch cluster.yaml`): a serve config plus the nodes, the head, and
// how the LLM is split over them (tensor_parallelism_degree, pipeline_parallelism_degree and an
// optional placement under `model:`). Everything is checked before anything starts: errors name
// the file, line and key, and layouts that cannot run say why.
#include <string>
#include <vector>

#include "config/serve_config.hpp"

namespace banyan::config {

struct NodeConfig {
  std::string name;
  std::string host;           // where the other nodes reach it
  std::string bind;           // the address it listens on; empty: host (0.0.0.0 in a container)
  int port = 7000;            // the node's actor port (CAF)
  int data_port = 7001;       // its data plane (UCX)
  std::string ucx_interface;  // empty: UCX chooses
  int cores = 0;              // 0: not limited
  int gpus = 0;
};

struct ClusterConfig {
  ServeConfig serve;
  std::vector<NodeConfig> nodes;
  std::string head;  // the node that runs the gateway and the scheduler
  // How `banyan launch` starts a node on another host; {host}, {node} and {config} are replaced.
  std::string remote_command = "ssh {host} banyan serve --node {node} --config {config}";
};

ClusterConfig load_cluster_config(const std::string& path);
ClusterConfig parse_cluster_config(const std::string& yaml_text, const std::string& source);

// Where each pipeline stage of the LLM runs: its node, its layers [first, end), and the tensor
// shards (one per core or GPU) its layers are split into, on its node or spread over several.
struct StagePlacement {
  std::string node;  // leads the stage: holds shard 0, takes the input, passes the output on
  int first_layer = 0, end_layer = 0;
  int tensor_shards = 1;  // of the whole stage
  // The nodes its shards are spread over, `node` first, each holding an equal run of ranks in
  // this order; empty: all on `node`.
  std::vector<std::string> shard_nodes;

  std::vector<std::string> holders() const { return shard_nodes.empty() ? std::vector<std::string>{node} : shard_nodes; }
  int shards_per_node() const { return tensor_shards / int(holders().size()); }
  // The first rank `name` holds; -1: it holds none.
  int first_rank_on(const std::string& name) const;
};

// What the model must allow for a layout (from its config.json).
struct ModelShape {
  int layers = 0, attention_heads = 0, kv_heads = 0, intermediate_size = 0;
};

// Places the LLM's stages: the given placement, or automatically in order over the nodes (stage
// i on node i * nodes / stages). Throws ConfigError naming the key when the degrees do not divide
// the model's heads, there are more stages than layers, a node is unknown, a stage's shards do
// not split evenly over its nodes, or a node has fewer cores (CPU) or GPUs (CUDA) than the
// shards placed on it.
std::vector<StagePlacement> place_stages(const ClusterConfig& cluster, const ModelShape& model);

// What one node runs of the placed stages: runs of consecutive stages [first, end) (indices into
// the placement), each passing its output on to stage `end` on another node, unless the model
// ends there. The head also gets a run without stages (first == end == 0) when another node holds
// stage 0: its link to the pipeline.
struct StageRunPlan {
  int first = 0, end = 0;
  bool passes_on = false;
};
std::vector<StageRunPlan> plan_runs(const std::vector<StagePlacement>& stages, const std::string& node, bool head);
// The stages (indices into the placement) whose shards `node` holds some of while another node
// leads them: it computes its shards of each when the leader asks.
std::vector<int> followed_stages(const std::vector<StagePlacement>& stages, const std::string& node);

}  // namespace banyan::config
