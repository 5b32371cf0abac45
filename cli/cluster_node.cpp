#include "cli/cluster_node.hpp"

#include <caf/io/all.hpp>
#include <iostream>

#include "actors/memory.hpp"
#include "actors/messages.hpp"
#include "actors/transport/ring_all_reduce.hpp"
#include "cli/stop_signal.hpp"
#include "model/error.hpp"
#include "model/tensor_shard_weights.hpp"
#include "model/weight_source.hpp"

namespace banyan::cli {

namespace {

actors::NodeAddress address_of(const config::NodeConfig& n) { return {n.name, n.host, n.port}; }

const config::NodeConfig& node_named(const ClusterRole& role, const std::string& name) {
  const auto& nodes = role.cluster.nodes;
  return *std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.name == name; });  // placed: it exists
}

}  // namespace

ClusterRole cluster_role(config::ClusterConfig cluster, const std::string& node) {
  ClusterRole r;
  r.cluster = std::move(cluster);
  const auto& nodes = r.cluster.nodes;
  auto it = std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.name == node; });
  if (it == nodes.end()) {
    std::string names;
    for (const auto& n : nodes) names += (names.empty() ? "" : ", ") + n.name;
    throw config::ConfigError(r.cluster.serve.source + ": no node is named '" + node + "' (the nodes: " + names + ")");
  }
  r.node = *it;
  r.head = node == r.cluster.head;
  const LlamaConfig model =
      open_model_or_first_shard(r.cluster.serve.model.path, r.cluster.serve.model.tensor_parallelism_degree)->config();
  r.placement = config::place_stages(
      r.cluster, {model.num_hidden_layers, model.num_attention_heads, model.num_key_value_heads, model.intermediate_size});
  r.runs = config::plan_runs(r.placement, node, r.head);
  r.followed = config::followed_stages(r.placement, node);
  return r;
}

std::vector<StageLoad> stage_loads(const ClusterRole& role, const std::shared_ptr<actors::Bulk>& bulk,
                                   const std::shared_ptr<actors::ClusterHealth>& health) {
  std::vector<int> indices;
  for (const auto& run : role.runs)
    for (int s = run.first; s < run.end; ++s) indices.push_back(s);
  indices.insert(indices.end(), role.followed.begin(), role.followed.end());
  std::vector<StageLoad> loads;
  for (const int s : indices) {
    const config::StagePlacement& p = role.placement[std::size_t(s)];
    StageLoad load{.layers = {p.first_layer, p.end_layer}};
    if (p.holders().size() > 1) {
      if (!bulk) throw Error("the tensor shards of stage " + std::to_string(s) + " are spread over nodes: node " +
                             role.node.name + " needs a data plane");
      load.first_rank = p.first_rank_on(role.node.name);
      load.shards = p.shards_per_node();
      auto plane = std::shared_ptr<transport::DataPlane>(bulk, &bulk->plane());
      for (int rank = load.first_rank; rank < load.first_rank + load.shards; ++rank) {
        transport::RingOptions ring{.rank = rank, .size = p.tensor_shards, .group = transport::kSpreadRingGroups | std::uint32_t(s)};
        ring.abandon = [health] {
          const auto problems = health->problems();
          return problems.empty() ? std::string() : problems.front();
        };
        const config::NodeConfig& next = node_named(role, p.holders()[std::size_t((rank + 1) % p.tensor_shards / load.shards)]);
        load.collectives.push_back(std::make_shared<transport::RingAllReduce>(plane, next.host, next.data_port, std::move(ring)));
      }
    }
    loads.push_back(std::move(load));
  }
  return loads;
}

std::vector<actors::StageRun> stage_runs(const ClusterRole& role, std::vector<std::shared_ptr<PipelineStage>> stages) {
  // The other nodes of each stage's tensor shards, for the stages this node leads.
  const auto shard_nodes = [&](int s) {
    std::vector<actors::NodeAddress> out;
    for (const auto& n : role.placement[std::size_t(s)].holders())
      if (n != role.node.name) out.push_back(address_of(node_named(role, n)));
    return out;
  };
  std::vector<actors::StageRun> runs;
  auto next = stages.begin();
  for (const auto& plan : role.runs) {
    actors::StageRun run;
    run.stages.assign(std::make_move_iterator(next), std::make_move_iterator(next + (plan.end - plan.first)));
    next += plan.end - plan.first;
    for (int s = plan.first; s < plan.end; ++s) run.shard_nodes.push_back(shard_nodes(s));
    if (plan.passes_on) {
      const auto& after = role.placement[std::size_t(plan.end)];
      run.next = actors::RemoteStage{address_of(node_named(role, after.node)), after.first_layer};
    }
    runs.push_back(std::move(run));
  }
  for (const int s : role.followed)
    runs.push_back({.stages = {std::move(*next++)},
                    .leader = address_of(node_named(role, role.placement[std::size_t(s)].node))});
  return runs;
}

std::vector<actors::NodeAddress> other_nodes(const ClusterRole& role) {
  std::vector<actors::NodeAddress> out;
  for (const auto& n : role.cluster.nodes)
    if (n.name != role.node.name) out.push_back(address_of(n));
  return out;
}

NodeListen listen_of(const ClusterRole& role) {
  const auto& n = role.node;
  return {n.host, n.bind.empty() ? n.host : n.bind, n.port, n.data_port, n.ucx_interface};
}

std::shared_ptr<actors::Bulk> make_data_plane(const NodeListen& listen) {
  if (listen.data_port < 0) return nullptr;
  return std::make_shared<actors::Bulk>(listen.host, listen.bind, listen.data_port, listen.ucx_interface);
}

int serve_stage_node(const std::string& name, const ModelChoice& choice, const RunsOf& runs, const NodeListen& listen,
                     std::shared_ptr<actors::Bulk> bulk, std::shared_ptr<actors::ClusterHealth> health) {
  StopSignal stop;
  LoadedModels m = load_models(choice);
  std::string layers;
  for (const auto& s : m.weights->llm_stages)
    layers += (layers.empty() ? "" : ", ") + std::to_string(s->first_layer()) + "-" + std::to_string(s->end_layer() - 1);
  caf::actor_system_config config;
  actors::configure_actor_system(config);
  config.load<caf::io::middleman>();
  auto system = std::make_unique<caf::actor_system>(config);
  std::shared_ptr<NodeWeights> weights;  // outlives the stage actors computing with it
  {
    // The memory actor owns the weights; the stage actors get them from it.
    const actors::memory_actor memory = actors::spawn_memory(*system, std::move(m.weights));
    weights = actors::weights_of(*system, memory);
    {
      actors::Node node(*system, name, runs(weights->llm_stages), {}, bulk, std::move(health), memory);
      const int published = node.publish(listen.bind, listen.port);
      std::cout << "banyan " << name << ": layers " << layers << " of " << choice.llm.path.string() << " ready on "
                << listen.bind << ":" << published;
      if (bulk) std::cout << " (data plane on port " << bulk->port() << ")";
      std::cout << std::endl;
      stop.wait();
    }
    // It answered the head's reports: the network layer holds it until it is told to stop.
    caf::anon_send_exit(memory, caf::exit_reason::user_shutdown);
  }
  system.reset();
  std::cerr << "banyan " << name << ": stopped\n";
  return 0;
}

}  // namespace banyan::cli
