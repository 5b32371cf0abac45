#include "cli/cluster_node.hpp"

#include <caf/io/all.hpp>
#include <iostream>

#include "actors/messages.hpp"
#include "cli/stop_signal.hpp"
#include "model/error.hpp"
#include "model/weight_source.hpp"

namespace banyan::cli {

namespace {

actors::NodeAddress address_of(const config::NodeConfig& n) { return {n.name, n.host, n.port}; }

}  // namespace

std::vector<LayerRange> ClusterRole::local_layers() const {
  std::vector<LayerRange> layers;
  for (const auto& run : runs)
    for (int s = run.first; s < run.end; ++s)
      layers.push_back({placement[std::size_t(s)].first_layer, placement[std::size_t(s)].end_layer});
  return layers;
}

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
  const LlamaConfig model = open_weights(r.cluster.serve.model.path)->config();
  r.placement = config::place_stages(
      r.cluster, {model.num_hidden_layers, model.num_attention_heads, model.num_key_value_heads, model.intermediate_size});
  r.runs = config::plan_runs(r.placement, node, r.head);
  return r;
}

std::vector<actors::StageRun> stage_runs(const ClusterRole& role, std::vector<std::shared_ptr<PipelineStage>> stages) {
  std::vector<actors::StageRun> runs;
  auto next = stages.begin();
  for (const auto& plan : role.runs) {
    actors::StageRun run;
    run.stages.assign(std::make_move_iterator(next), std::make_move_iterator(next + (plan.end - plan.first)));
    next += plan.end - plan.first;
    if (plan.passes_on) {
      const auto& after = role.placement[std::size_t(plan.end)];
      const auto node = std::find_if(role.cluster.nodes.begin(), role.cluster.nodes.end(),
                                     [&](const auto& n) { return n.name == after.node; });
      run.next = actors::RemoteStage{address_of(*node), after.first_layer};
    }
    runs.push_back(std::move(run));
  }
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
  return {n.host, n.bind.empty() ? n.host : n.bind, n.port, n.data_port};
}

std::shared_ptr<actors::Bulk> make_data_plane(const NodeListen& listen) {
  if (listen.data_port < 0) return nullptr;
  return std::make_shared<actors::Bulk>(listen.host, listen.bind, listen.data_port);
}

int serve_stage_node(const std::string& name, const ModelChoice& choice, const RunsOf& runs, const NodeListen& listen) {
  StopSignal stop;
  LoadedModels m = load_models(choice);
  std::string layers;
  for (const auto& s : m.llm_stages)
    layers += (layers.empty() ? "" : ", ") + std::to_string(s->first_layer()) + "-" + std::to_string(s->end_layer() - 1);
  caf::actor_system_config config;
  actors::configure_actor_system(config);
  config.load<caf::io::middleman>();
  auto system = std::make_unique<caf::actor_system>(config);
  {
    auto bulk = make_data_plane(listen);
    actors::Node node(*system, name, runs(std::move(m.llm_stages)), {}, bulk);
    const int published = node.publish(listen.bind, listen.port);
    std::cout << "banyan " << name << ": layers " << layers << " of " << choice.llm.path.string() << " ready on "
              << listen.bind << ":" << published;
    if (bulk) std::cout << " (data plane on port " << bulk->port() << ")";
    std::cout << std::endl;
    stop.wait();
  }
  system.reset();
  std::cerr << "banyan " << name << ": stopped\n";
  return 0;
}

}  // namespace banyan::cli
