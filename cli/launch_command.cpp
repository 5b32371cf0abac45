// banyan launch: a cluster from its YAML (config/cluster_config.hpp). Today it checks the file
// and shows where every stage of the LLM would run (--dry-run); starting the nodes comes with
// the multi-node runtime (issue 6).
#include <iostream>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "config/cluster_config.hpp"
#include "model/weight_source.hpp"

namespace banyan::cli {

int launch_command(int argc, char** argv) {
  Options o("launch", "CLUSTER.yaml --dry-run",
            "Checks a cluster config (a serve config plus `nodes:`, `head:` and the LLM's\n"
            "tensor_parallelism_degree, pipeline_parallelism_degree and placement under `model:`) against\n"
            "the model, and prints where each pipeline stage and its tensor shards would run. Layouts\n"
            "that cannot run (degrees that do not divide the heads, unknown nodes, more shards than\n"
            "cores or GPUs) are errors naming the key. Starting the nodes is not built yet.");
  o.flag("--dry-run", "check and print the placement, start nothing");
  if (!o.parse(argc, argv)) return 0;
  if (o.positional().size() != 1) throw UsageError("give one cluster config file");
  const config::ClusterConfig c = config::load_cluster_config(o.positional()[0]);
  const LlamaConfig model = open_weights(c.serve.model.path)->config();
  const auto stages = config::place_stages(
      c, {model.num_hidden_layers, model.num_attention_heads, model.num_key_value_heads, model.intermediate_size});

  std::cout << "cluster " << c.serve.source << ": " << c.nodes.size() << " node(s), head " << c.head << "\n";
  for (const auto& n : c.nodes) {
    std::cout << "  " << n.name << "  " << n.host << ":" << n.port << " (data plane " << n.data_port
              << (n.ucx_interface.empty() ? "" : " on " + n.ucx_interface) << ")";
    if (n.cores) std::cout << ", " << n.cores << " cores";
    if (n.gpus) std::cout << ", " << n.gpus << " GPUs";
    std::cout << "\n";
  }
  std::cout << "LLM " << c.serve.model.path << " (" << model.summary() << "): " << stages.size()
            << " pipeline stage(s) x " << c.serve.model.tensor_parallelism_degree << " tensor shard(s)\n";
  for (std::size_t s = 0; s < stages.size(); ++s)
    std::cout << "  stage " << s << ": layers " << stages[s].first_layer << "-" << stages[s].end_layer - 1 << " on "
              << stages[s].node << ", " << stages[s].tensor_shards << " shard(s)\n";
  for (const auto& ssm : c.serve.ssms) std::cout << "SSM " << ssm.path << " on " << c.head << "\n";
  if (!o.has("--dry-run")) {
    std::cerr << "banyan launch: starting the nodes is not built yet (issue 6); the config is valid\n";
    return 1;
  }
  return 0;
}

}  // namespace banyan::cli
