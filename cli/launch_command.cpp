// banyan launch: a whole cluster from its YAML (config/cluster_config.hpp). Checks it, starts
// every node (`banyan serve --node NAME` here, the cluster's remote command for other hosts),
// relays their output with each node's name in front, prints the endpoints once the head serves,
// restarts a node that dies after that (it rejoins), and stops them all on SIGTERM or SIGINT.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>

#include "cli/cluster_node.hpp"
#include "cli/commands.hpp"
#include "cli/node_process.hpp"
#include "cli/options.hpp"
#include "cli/stop_signal.hpp"
#include "model/error.hpp"

namespace banyan::cli {

namespace {

void print_placement(const ClusterRole& role) {
  const auto& c = role.cluster;
  std::cout << "cluster " << c.serve.source << ": " << c.nodes.size() << " node(s), head " << c.head << "\n";
  for (const auto& n : c.nodes) {
    std::cout << "  " << n.name << "  " << n.host << ":" << n.port << " (data plane " << n.data_port
              << (n.ucx_interface.empty() ? "" : " on " + n.ucx_interface) << ")";
    if (n.cores) std::cout << ", " << n.cores << " cores";
    if (n.gpus) std::cout << ", " << n.gpus << " GPUs";
    std::cout << "\n";
  }
  std::cout << "LLM " << c.serve.model.path << ": " << role.placement.size() << " pipeline stage(s) x "
            << c.serve.model.tensor_parallelism_degree << " tensor shard(s)\n";
  for (std::size_t s = 0; s < role.placement.size(); ++s) {
    const auto& p = role.placement[s];
    std::cout << "  stage " << s << ": layers " << p.first_layer << "-" << p.end_layer - 1 << " on " << p.node << ", "
              << p.tensor_shards << " shard(s)";
    const auto holders = p.holders();
    for (std::size_t i = 0; i < holders.size() && holders.size() > 1; ++i) {
      const int first = p.first_rank_on(holders[i]);
      std::cout << (i ? ", " : " spread: ") << first + 1 << "-" << first + p.shards_per_node() << " on " << holders[i];
    }
    std::cout << "\n";
  }
  for (const auto& ssm : c.serve.ssms) std::cout << "SSM " << ssm.path << " on " << c.head << "\n";
}

std::string replace_all(std::string text, const std::string& key, const std::string& value) {
  for (std::size_t at; (at = text.find(key)) != std::string::npos;) text.replace(at, key.size(), value);
  return text;
}

// The command that runs `node`: this binary when the node is on this machine, else the
// cluster's remote command through the shell.
std::vector<std::string> node_command(const config::ClusterConfig& c, const config::NodeConfig& node,
                                      const std::string& config_path) {
  if (is_this_machine(node.host))
    return {std::filesystem::read_symlink("/proc/self/exe").string(), "serve", "--node", node.name, "--config", config_path};
  std::string command = replace_all(c.remote_command, "{host}", node.host);
  command = replace_all(command, "{node}", node.name);
  return {"/bin/sh", "-c", replace_all(command, "{config}", config_path)};
}

// The nodes' output, each line with its node's name in front; notes the head's endpoint.
class Relay {
 public:
  explicit Relay(std::string head) : head_(std::move(head)) {}
  NodeProcess::OnLine for_node(const std::string& name) {
    return [this, name](const std::string& line) {
      std::smatch m;
      if (name == head_ && std::regex_search(line, m, listening_)) {
        std::lock_guard lock(mutex_);
        endpoint_ = m[1];
      }
      say("[" + name + "] " + line);
    };
  }
  void say(const std::string& line) {
    std::lock_guard lock(mutex_);
    std::cerr << line << std::endl;
  }
  std::string endpoint() const {
    std::lock_guard lock(mutex_);
    return endpoint_;
  }

 private:
  std::string head_;
  const std::regex listening_{"listening on (http://\\S+)"};  // the head's endpoint line
  mutable std::mutex mutex_;
  std::string endpoint_;
};

class Cluster {
 public:
  Cluster(const config::ClusterConfig& c, std::string config_path) : c_(c), path_(std::move(config_path)), relay_(c.head) {}

  // Workers first, the head last: it waits for them.
  void start_all() {
    for (const auto& n : c_.nodes)
      if (n.name != c_.head) start(n);
    for (const auto& n : c_.nodes)
      if (n.name == c_.head) start(n);
  }

  // Runs until a stop signal (exit 0) or until the head exits, or a node exits before the
  // cluster is up (its status, or 1).
  int supervise(StopSignal& stop) {
    bool up = false;
    for (;;) {
      if (stop.wait(std::chrono::milliseconds(200))) return stop_all(), 0;
      if (!up && !relay_.endpoint().empty()) {
        up = true;
        std::cout << "banyan launch: " << c_.nodes.size() << " node(s) up; serving on " << relay_.endpoint() << std::endl;
      }
      for (const auto& n : c_.nodes) {
        const auto status = nodes_.at(n.name)->exit_status();
        if (!status) continue;
        relay_.say("banyan launch: node " + n.name + " exited with status " + std::to_string(*status));
        if (n.name == c_.head || !up) return stop_all(), *status == 0 ? 1 : *status;
        restart(n);
      }
    }
  }

 private:
  // Again, but not more often than every 2 s: a node that cannot start does not spin.
  void restart(const config::NodeConfig& n) {
    const auto since = std::chrono::steady_clock::now() - started_at_[n.name];
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::seconds(2) - since);
    relay_.say("banyan launch: restarting node " + n.name +
               (wait.count() > 0 ? " in " + std::to_string(wait.count()) + " ms" : ""));
    if (wait.count() > 0) std::this_thread::sleep_for(wait);
    start(n);
  }

  void start(const config::NodeConfig& n) {
    started_at_[n.name] = std::chrono::steady_clock::now();
    nodes_[n.name].reset();  // the old one's relay is done before the new one starts
    nodes_[n.name] = std::make_unique<NodeProcess>(node_command(c_, n, path_), relay_.for_node(n.name));
    relay_.say("banyan launch: started node " + n.name + " (pid " + std::to_string(nodes_[n.name]->pid()) + ")");
  }

  // The head first, so that it drains its requests, then the workers; what outlives its
  // deadline is killed.
  void stop_all() {
    relay_.say("banyan launch: stopping the cluster");
    auto stop = [&](const std::string& name, std::chrono::seconds deadline) {
      NodeProcess& p = *nodes_.at(name);
      p.signal(SIGTERM);
      if (!p.wait(deadline)) {
        relay_.say("banyan launch: node " + name + " did not stop within " + std::to_string(deadline.count()) + " s: killed");
        p.signal(SIGKILL);
        p.wait(std::chrono::seconds(5));
      } else if (*p.exit_status() != 0) {
        relay_.say("banyan launch: node " + name + " stopped with status " + std::to_string(*p.exit_status()));
      }
    };
    stop(c_.head, std::chrono::seconds(long(c_.serve.server.shutdown_grace_s) + 10));
    for (auto& [name, p] : nodes_)
      if (name != c_.head) p->signal(SIGTERM);
    for (auto& [name, p] : nodes_)
      if (name != c_.head) stop(name, std::chrono::seconds(10));
    nodes_.clear();
  }

  const config::ClusterConfig& c_;
  std::string path_;
  Relay relay_;
  std::map<std::string, std::unique_ptr<NodeProcess>> nodes_;
  std::map<std::string, std::chrono::steady_clock::time_point> started_at_;
};

}  // namespace

int launch_command(int argc, char** argv) {
  Options o("launch", "CLUSTER.yaml [--dry-run]",
            "Starts a cluster: every node of the config (a serve config plus `nodes:`, `head:` and the LLM's\n"
            "pipeline_parallelism_degree and placement under `model:`) as `banyan serve --node NAME`, here for\n"
            "nodes on this machine and through `launch.remote_command` (default: ssh {host} banyan serve ...)\n"
            "for the others. Their output comes here with each node's name in front; the head's endpoint is\n"
            "printed once every node has joined. A node that dies after that is restarted and rejoins.\n"
            "SIGTERM or SIGINT stops the whole cluster. The config is checked against the model first:\n"
            "layouts that cannot run are errors naming the key, and nothing starts.");
  o.flag("--dry-run", "check and print the placement, start nothing");
  if (!o.parse(argc, argv)) return 0;
  if (o.positional().size() != 1) throw UsageError("give one cluster config file");
  const std::string path = std::filesystem::absolute(o.positional()[0]).string();
  config::ClusterConfig c = config::load_cluster_config(path);
  const std::string head = c.head;
  const ClusterRole role = cluster_role(std::move(c), head);
  print_placement(role);
  if (o.has("--dry-run")) return 0;

  StopSignal stop;
  Cluster cluster(role.cluster, path);
  cluster.start_all();
  const int status = cluster.supervise(stop);
  std::cerr << "banyan launch: stopped\n";
  return status;
}

}  // namespace banyan::cli
