#include "config/cluster_config.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "config/yaml_section.hpp"

namespace banyan::config {

namespace {

NodeConfig read_node(Section s) {
  NodeConfig n;
  s.read("name", n.name, "a name");
  s.read("host", n.host, "a host name or address");
  s.read("bind", n.bind, "an address");
  s.read("port", n.port, "a port number");
  s.read("data_port", n.data_port, "a port number");
  s.read("ucx_interface", n.ucx_interface, "a network interface");
  s.read("cores", n.cores, "an integer");
  s.read("gpus", n.gpus, "an integer");
  s.finish();
  if (n.name.empty()) s.fail(s.node(), "missing 'name'");
  if (n.host.empty()) s.fail(s.node(), "node '" + n.name + "' has no 'host'");
  for (int p : {n.port, n.data_port})
    if (p < 1 || p > 65535) s.fail(s.node(), "node '" + n.name + "': ports must be 1 to 65535 (others connect to them)");
  if (n.port == n.data_port) s.fail(s.get("data_port"), "node '" + n.name + "': port and data_port must differ");
  if (n.cores < 0 || n.gpus < 0) s.fail(s.node(), "node '" + n.name + "': cores and gpus must not be negative");
  return n;
}

}  // namespace

ClusterConfig parse_cluster_config(const std::string& text, const std::string& source) {
  const YAML::Node root = load_yaml(text, source);
  Section top(root, "", source);
  ClusterConfig c;
  c.serve = read_serve(top, source, true);
  const YAML::Node nodes = top.get("nodes");
  if (!nodes || nodes.IsNull() || !nodes.IsSequence() || nodes.size() == 0)
    fail_at(nodes ? nodes : root, "nodes", source, "a cluster needs a list of nodes");
  std::set<std::string> names, addresses;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const std::string key = "nodes[" + std::to_string(i) + "]";
    NodeConfig n = read_node(Section(nodes[i], key, source));
    if (!names.insert(n.name).second) fail_at(nodes[i], key + ".name", source, "two nodes are named '" + n.name + "'");
    for (int p : {n.port, n.data_port})
      if (!addresses.insert(n.host + ":" + std::to_string(p)).second)
        fail_at(nodes[i], key, source, "node '" + n.name + "': " + n.host + ":" + std::to_string(p) + " is taken by another node");
    c.nodes.push_back(std::move(n));
  }
  Section launch = top.child("launch");
  launch.read("remote_command", c.remote_command, "a command line");
  launch.finish();
  top.read("head", c.head, "a node name");
  if (c.head.empty()) c.head = c.nodes.front().name;
  if (!names.count(c.head)) fail_at(top.get("head"), "head", source, "no node is named '" + c.head + "'");

  const YAML::Node model = top.get("model");
  const ModelConfig& m = c.serve.model;
  if (m.tensor_parallelism_degree < 1 || m.tensor_parallelism_degree > 256)
    fail_at(model["tensor_parallelism_degree"], "model.tensor_parallelism_degree", source, "must be 1 to 256");
  if (m.pipeline_parallelism_degree < 1 || m.pipeline_parallelism_degree > 256)
    fail_at(model["pipeline_parallelism_degree"], "model.pipeline_parallelism_degree", source, "must be 1 to 256");
  if (!m.placement.empty()) {
    if (int(m.placement.size()) != m.pipeline_parallelism_degree)
      fail_at(model["placement"], "model.placement", source,
              "names " + std::to_string(m.placement.size()) + " node(s) for " +
                  std::to_string(m.pipeline_parallelism_degree) + " pipeline stage(s): one per stage");
    for (std::size_t i = 0; i < m.placement.size(); ++i) {
      std::set<std::string> in_stage;
      for (const std::string& n : m.placement[i]) {
        if (!names.count(n)) fail_at(model["placement"][i], "model.placement", source, "no node is named '" + n + "'");
        if (!in_stage.insert(n).second)
          fail_at(model["placement"][i], "model.placement", source, "stage " + std::to_string(i) + " names node '" + n + "' twice");
      }
    }
  }
  top.finish();
  validate(c.serve);
  return c;
}

ClusterConfig load_cluster_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the cluster config");
  return parse_cluster_config(std::string(std::istreambuf_iterator<char>(in), {}), path);
}

std::vector<StagePlacement> place_stages(const ClusterConfig& c, const ModelShape& model) {
  const ModelConfig& m = c.serve.model;
  const std::string& src = c.serve.source;
  const int tp = m.tensor_parallelism_degree, pp = m.pipeline_parallelism_degree;
  auto fail = [&](const std::string& key, const std::string& what) { throw ConfigError(src + ": key '" + key + "': " + what); };
  const std::string tp_key = "model.tensor_parallelism_degree";
  if (model.attention_heads % tp != 0)
    fail(tp_key, std::to_string(tp) + " does not divide the model's " + std::to_string(model.attention_heads) + " attention heads");
  if (model.kv_heads % tp != 0)
    fail(tp_key, std::to_string(tp) + " does not divide the model's " + std::to_string(model.kv_heads) + " key/value heads");
  if (model.intermediate_size % tp != 0)
    fail(tp_key, std::to_string(tp) + " does not divide the model's MLP width " + std::to_string(model.intermediate_size));
  if (pp > model.layers)
    fail("model.pipeline_parallelism_degree",
         std::to_string(pp) + " stages for a model of " + std::to_string(model.layers) + " layers");

  std::vector<StagePlacement> stages;
  std::map<std::string, int> shards_on;
  for (int s = 0; s < pp; ++s) {
    StagePlacement p;
    if (m.placement.empty()) {
      p.node = c.nodes[std::size_t(s * int(c.nodes.size()) / pp)].name;
    } else {
      p.node = m.placement[std::size_t(s)].front();
      if (m.placement[std::size_t(s)].size() > 1) p.shard_nodes = m.placement[std::size_t(s)];
    }
    p.first_layer = model.layers * s / pp;  // consecutive ranges of (nearly) equal size, as split_layers cuts them
    p.end_layer = model.layers * (s + 1) / pp;
    p.tensor_shards = tp;
    const int spread = int(p.holders().size());
    if (tp % spread != 0)
      fail("model.placement", "stage " + std::to_string(s) + "'s " + std::to_string(tp) + " tensor shard(s) do not split evenly over its " +
                                  std::to_string(spread) + " nodes");
    for (const auto& n : p.holders()) shards_on[n] += p.shards_per_node();
    stages.push_back(p);
  }
  const bool cuda = c.serve.compute.device == "cuda";
  for (const NodeConfig& n : c.nodes) {
    const int shards = shards_on[n.name], room = cuda ? n.gpus : n.cores;
    if (shards > 0 && (cuda || room > 0) && shards > room)
      fail(m.placement.empty() ? tp_key : "model.placement",
           "node '" + n.name + "' would hold " + std::to_string(shards) + " tensor shards but has " + std::to_string(room) +
               (cuda ? " GPU(s)" : " core(s)"));
  }
  return stages;
}

int StagePlacement::first_rank_on(const std::string& name) const {
  const auto all = holders();
  const auto it = std::find(all.begin(), all.end(), name);
  return it == all.end() ? -1 : int(it - all.begin()) * shards_per_node();
}

std::vector<int> followed_stages(const std::vector<StagePlacement>& stages, const std::string& node) {
  std::vector<int> out;
  for (std::size_t s = 0; s < stages.size(); ++s)
    if (stages[s].node != node && stages[s].first_rank_on(node) >= 0) out.push_back(int(s));
  return out;
}

std::vector<StageRunPlan> plan_runs(const std::vector<StagePlacement>& stages, const std::string& node, bool head) {
  std::vector<StageRunPlan> runs;
  if (head && !stages.empty() && stages.front().node != node) runs.push_back({0, 0, true});
  const int count = int(stages.size());
  for (int s = 0; s < count; ++s) {
    if (stages[std::size_t(s)].node != node) continue;
    if (runs.empty() || runs.back().end != s || runs.back().first == runs.back().end) runs.push_back({s, s, false});
    runs.back().end = s + 1;
    runs.back().passes_on = s + 1 < count;
  }
  return runs;
}

}  // namespace banyan::config
