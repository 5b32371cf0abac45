// cluster.yaml (`banyan launch`): a full file parses on top of the serve keys; mistakes name the
// file, line and key; stages are placed in order or as told, and layouts that cannot run (degrees
// that do not divide the heads, more stages than layers, more shards than cores or GPUs) say why.
#define BOOST_TEST_MODULE test_cluster_config
#include <boost/test/unit_test.hpp>
#include <set>
#include <yaml-cpp/yaml.h>

#include "config/cluster_config.hpp"

using namespace banyan::config;

namespace {

const char* kCluster = R"(
model:
  path: /models/llm
  tensor_parallelism_degree: 2
  pipeline_parallelism_degree: 4
ssms:
  - path: /models/ssm
nodes:
  - {name: a, host: 10.0.0.1, cores: 4}
  - {name: b, host: 10.0.0.2, port: 7100, data_port: 7101, ucx_interface: eth1, cores: 4}
head: b
)";

const ModelShape kShape{22, 32, 4, 5632};  // TinyLlama-1.1B

std::string error_of(const std::string& yaml, const ModelShape& shape = kShape) {
  try {
    place_stages(parse_cluster_config(yaml, "/etc/banyan/cluster.yaml"), shape);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

void expect(const std::string& yaml, const std::string& part, const ModelShape& shape = kShape) {
  const std::string msg = error_of(yaml, shape);
  BOOST_TEST_INFO("message: " << msg);
  BOOST_TEST(msg.find(part) != std::string::npos, "expected '" << part << "'");
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  BOOST_TEST_REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_full_file_and_automatic_placement) {
  const ClusterConfig c = parse_cluster_config(kCluster, "/etc/banyan/cluster.yaml");
  BOOST_TEST(c.serve.model.path == "/models/llm");
  BOOST_TEST(c.serve.ssms.size() == 1u);
  BOOST_TEST_REQUIRE(c.nodes.size() == 2u);
  BOOST_TEST((c.nodes[0].port == 7000 && c.nodes[0].data_port == 7001));  // defaults
  BOOST_TEST((c.nodes[1].port == 7100 && c.nodes[1].ucx_interface == "eth1" && c.nodes[1].cores == 4));
  BOOST_TEST(c.head == "b");
  const auto stages = place_stages(c, kShape);
  BOOST_TEST_REQUIRE(stages.size() == 4u);
  // In order: two stages a node, the 22 layers cut 5-6-5-6.
  const std::vector<std::string> nodes = {stages[0].node, stages[1].node, stages[2].node, stages[3].node};
  BOOST_TEST((nodes == std::vector<std::string>{"a", "a", "b", "b"}));
  BOOST_TEST((stages[0].first_layer == 0 && stages[0].end_layer == 5 && stages[1].end_layer == 11 && stages[3].end_layer == 22));
  BOOST_TEST(stages[2].tensor_shards == 2);
}

BOOST_AUTO_TEST_CASE(explicit_placement_and_the_head_defaults_to_the_first_node) {
  const std::string yaml = replaced(replaced(kCluster, "head: b\n", ""), "  pipeline_parallelism_degree: 4\n",
                                    "  pipeline_parallelism_degree: 2\n  placement: [b, a]\n");
  const ClusterConfig c = parse_cluster_config(yaml, "cluster.yaml");
  BOOST_TEST(c.head == "a");
  const auto stages = place_stages(c, kShape);
  BOOST_TEST_REQUIRE(stages.size() == 2u);
  BOOST_TEST((stages[0].node == "b" && stages[1].node == "a"));
}

BOOST_AUTO_TEST_CASE(each_node_runs_its_consecutive_stages_and_passes_on_to_the_next_node) {
  auto placed = [](std::vector<std::string> nodes) {
    std::vector<StagePlacement> stages;
    for (std::size_t i = 0; i < nodes.size(); ++i) stages.push_back({.node = nodes[i], .first_layer = int(i), .end_layer = int(i) + 1});
    return stages;
  };
  auto runs = [](const std::vector<StageRunPlan>& plans) {
    std::vector<std::tuple<int, int, bool>> out;
    for (const auto& p : plans) out.emplace_back(p.first, p.end, p.passes_on);
    return out;
  };
  using Runs = std::vector<std::tuple<int, int, bool>>;
  const auto stages = placed({"w", "h", "h", "w", "v"});
  // The head without stage 0 links to it first; its stages 1-2 pass on to stage 3.
  BOOST_TEST((runs(plan_runs(stages, "h", true)) == Runs{{0, 0, true}, {1, 3, true}}));
  // A worker holding two runs: stage 0 (on to stage 1) and stage 3 (on to stage 4).
  BOOST_TEST((runs(plan_runs(stages, "w", false)) == Runs{{0, 1, true}, {3, 4, true}}));
  BOOST_TEST((runs(plan_runs(stages, "v", false)) == Runs{{4, 5, false}}));  // the model ends there
  BOOST_TEST(plan_runs(stages, "x", false).empty());                        // a node with no stages
  BOOST_TEST((runs(plan_runs(placed({"h", "h"}), "h", true)) == Runs{{0, 2, false}}));
}

BOOST_AUTO_TEST_CASE(a_stages_tensor_shards_spread_over_nodes) {
  // Stage 0's four shards over a and b (a leads: shards 0-1; b: 2-3); stage 1's four all on b.
  const std::string yaml = replaced(replaced(replaced(kCluster, "tensor_parallelism_degree: 2", "tensor_parallelism_degree: 4"),
                                             "  pipeline_parallelism_degree: 4\n",
                                             "  pipeline_parallelism_degree: 2\n  placement: [[a, b], b]\n"),
                                    "cores: 4}\nhead", "cores: 6}\nhead");
  const ClusterConfig c = parse_cluster_config(yaml, "cluster.yaml");
  BOOST_TEST_REQUIRE(c.serve.model.placement.size() == 2u);
  BOOST_TEST((c.serve.model.placement[0] == std::vector<std::string>{"a", "b"}));
  const auto stages = place_stages(c, kShape);
  BOOST_TEST(stages[0].node == "a");
  BOOST_TEST((stages[0].holders() == std::vector<std::string>{"a", "b"}));
  BOOST_TEST(stages[0].shards_per_node() == 2);
  BOOST_TEST((stages[0].first_rank_on("a") == 0 && stages[0].first_rank_on("b") == 2));
  BOOST_TEST((stages[1].holders() == std::vector<std::string>{"b"} && stages[1].first_rank_on("a") == -1));
  // a leads stage 0 and passes on to b; b runs stage 1 and follows a in stage 0.
  BOOST_TEST(plan_runs(stages, "a", false).size() == 1u);
  BOOST_TEST((followed_stages(stages, "b") == std::vector<int>{0}));
  BOOST_TEST(followed_stages(stages, "a").empty());
  // b holds 2 + 4 shards: one core fewer is too few.
  expect(replaced(yaml, "cores: 6}\nhead", "cores: 5}\nhead"), "node 'b' would hold 6 tensor shards but has 5 core(s)");
}

BOOST_AUTO_TEST_CASE(the_remote_command_has_a_default_and_can_be_set) {
  BOOST_TEST(parse_cluster_config(kCluster, "c.yaml").remote_command ==
             "ssh {host} banyan serve --node {node} --config {config}");
  const std::string yaml = std::string(kCluster) + "launch:\n  remote_command: kubectl exec {node} -- banyan\n";
  BOOST_TEST(parse_cluster_config(yaml, "c.yaml").remote_command == "kubectl exec {node} -- banyan");
  BOOST_TEST(error_of(std::string(kCluster) + "launch:\n  remote: x\n").find("key 'launch.remote': unknown key") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(layouts_that_cannot_run) {
  expect(replaced(kCluster, "tensor_parallelism_degree: 2", "tensor_parallelism_degree: 3"),
         "key 'model.tensor_parallelism_degree': 3 does not divide the model's 32 attention heads");
  expect(replaced(kCluster, "tensor_parallelism_degree: 2", "tensor_parallelism_degree: 8"),
         "8 does not divide the model's 4 key/value heads");
  expect(replaced(kCluster, "pipeline_parallelism_degree: 4", "pipeline_parallelism_degree: 23"),
         "key 'model.pipeline_parallelism_degree': 23 stages for a model of 22 layers");
  expect(replaced(kCluster, "{name: a, host: 10.0.0.1, cores: 4}", "{name: a, host: 10.0.0.1, cores: 3}"),
         "node 'a' would hold 4 tensor shards but has 3 core(s)");
  expect(replaced(kCluster, "path: /models/llm", "path: /models/llm\n  dtype: f32") + "compute: {device: cuda}\n",
         "node 'a' would hold 4 tensor shards but has 0 GPU(s)");
  BOOST_TEST(error_of(replaced(kCluster, "cores: 4}", "}")) == "no error");  // no cores given: not limited
}

BOOST_AUTO_TEST_CASE(mistakes_name_file_line_and_key) {
  expect(replaced(kCluster, "head: b", "head: c"), "/etc/banyan/cluster.yaml:11:7: key 'head': no node is named 'c'");
  expect(replaced(kCluster, "pipeline_parallelism_degree: 4\n", "pipeline_parallelism_degree: 2\n  placement: [a, x]\n"),
         "key 'model.placement': no node is named 'x'");
  expect(replaced(kCluster, "pipeline_parallelism_degree: 4\n", "pipeline_parallelism_degree: 2\n  placement: [a]\n"),
         "key 'model.placement': names 1 node(s) for 2 pipeline stage(s)");
  expect(replaced(kCluster, "pipeline_parallelism_degree: 4\n", "pipeline_parallelism_degree: 1\n  placement: [[a, a]]\n"),
         "key 'model.placement': stage 0 names node 'a' twice");
  expect(replaced(kCluster, "pipeline_parallelism_degree: 4\n", "pipeline_parallelism_degree: 1\n  placement: [{a: 1}]\n"),
         "key 'model.placement': expected a list with a node name, or a list of node names, per stage");
  expect(replaced(kCluster, "pipeline_parallelism_degree: 4\n", "pipeline_parallelism_degree: 1\n  placement: [[a, b, x]]\n"),
         "key 'model.placement': no node is named 'x'");
  expect(replaced(replaced(kCluster, "pipeline_parallelism_degree: 4\n", "pipeline_parallelism_degree: 1\n  placement: [[a, b]]\n"),
                  "tensor_parallelism_degree: 2", "tensor_parallelism_degree: 1"),
         "key 'model.placement': stage 0's 1 tensor shard(s) do not split evenly over its 2 nodes");
  expect(replaced(kCluster, "name: b,", "name: a,"), "key 'nodes[1].name': two nodes are named 'a'");
  expect(replaced(kCluster, "host: 10.0.0.2, port: 7100, data_port: 7101", "host: 10.0.0.1"),
         "node 'b': 10.0.0.1:7000 is taken by another node");
  expect(replaced(kCluster, "data_port: 7101", "data_port: 7100"), "key 'nodes[1]': node 'b': port and data_port must differ");
  expect(replaced(kCluster, "{name: a, host: 10.0.0.1, cores: 4}", "{name: a, cores: 4}"), "node 'a' has no 'host'");
  expect(replaced(kCluster, "cores: 4}", "cpus: 4}"), "key 'nodes[0].cpus': unknown key");
  expect(replaced(kCluster, "tensor_parallelism_degree: 2", "tensor_parallelism_degree: two"),
         "key 'model.tensor_parallelism_degree': expected an integer, got 'two'");
  expect("model: {path: x}\n", "key 'nodes': a cluster needs a list of nodes");
  // The serve keys keep their own checks, and a serve config does not take the cluster's.
  expect(replaced(kCluster, "head: b", "head: b\nlimits: {max_requests_per_batch: 0}"),
         "key 'limits.max_requests_per_batch': must be 1 to 1024");
  try {
    parse_serve_config("model:\n  path: x\n  tensor_parallelism_degree: 2\n", "serve.yaml");
    BOOST_FAIL("a serve config took a cluster key");
  } catch (const ConfigError& e) {
    BOOST_TEST(std::string(e.what()).find("serve.yaml:3:3: key 'model.tensor_parallelism_degree': unknown key") !=
               std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(the_example_file_places_the_demo_model) {
  const ClusterConfig c = load_cluster_config(BANYAN_SOURCE_DIR "/examples/cluster.yaml");
  BOOST_TEST(c.serve.model.path == BANYAN_SOURCE_DIR "/models/demo-llm");
  const auto stages = place_stages(c, {6, 6, 2, 768});  // the demo LLM's shape
  BOOST_TEST_REQUIRE(stages.size() == 2u);
  BOOST_TEST((stages[0].node == "head" && stages[1].node == "worker-1" && stages[1].first_layer == 3));
}

BOOST_AUTO_TEST_CASE(the_kubernetes_manifests_hold_a_cluster_that_places) {
  // The ConfigMap's cluster config names the pods the manifests make: the head Deployment's
  // --node and one banyan-worker-N per StatefulSet replica.
  const std::string dir = BANYAN_SOURCE_DIR "/deploy/kubernetes/";
  const YAML::Node map = YAML::LoadFile(dir + "configmap.yaml");
  const ClusterConfig c = parse_cluster_config(map["data"]["cluster.yaml"].as<std::string>(), "configmap.yaml");
  const auto stages = place_stages(c, {6, 6, 2, 768});  // the demo LLM the image carries
  BOOST_TEST(stages.size() == 3u);
  std::set<std::string> names;
  for (const auto& n : c.nodes) names.insert(n.name);
  int replicas = 0;
  std::string head_node;
  for (const std::string file : {"head.yaml", "workers.yaml"})
    for (const YAML::Node& doc : YAML::LoadAllFromFile(dir + file)) {
      if (doc["kind"].as<std::string>() == "StatefulSet") replicas = doc["spec"]["replicas"].as<int>();
      if (doc["kind"].as<std::string>() == "Deployment")
        head_node = doc["spec"]["template"]["spec"]["containers"][0]["args"][2].as<std::string>();
    }
  BOOST_TEST(head_node == c.head);
  std::set<std::string> pods = {head_node};
  for (int i = 0; i < replicas; ++i) pods.insert("banyan-worker-" + std::to_string(i));
  BOOST_TEST((pods == names));
}

