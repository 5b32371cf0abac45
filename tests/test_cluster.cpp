// A cluster as its users meet it: `banyan launch cluster.yaml` starting the head and its workers
// as processes on loopback (and, where `ip netns` works, a worker behind a veth link in a network
// namespace); pipeline stages and tensor shards over them (together on a node or spread over
// nodes) stream what one process streams; a worker killed, stopped or cut off mid-stream is an
// error frame within 5 s, /health says degraded, new requests get a fast 503, and once the worker
// is back the head serves again without a restart.
#define BOOST_TEST_MODULE test_cluster
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/test_support.hpp"
#include "testkit/child_process.hpp"
#include "testkit/free_ports.hpp"
#include "testkit/http_client.hpp"
#include "testkit/token_stream.hpp"

using namespace banyan;
using nlohmann::json;
using namespace std::chrono_literals;
using testkit::free_ports;

namespace {

const std::string kPrompt = "Once upon a time";

struct NodeSpec {
  std::string name, host;
};

// A cluster config for the demo models: the nodes (the first is the head), the LLM (`llm`, else
// the demo LLM) in `placement.size()` stages placed so, each split into `tensor_shards`, the HTTP
// server on a free loopback port, and `more` (other sections) after it.
std::string cluster_yaml(const std::vector<NodeSpec>& nodes, const std::vector<std::string>& placement, int http_port,
                         const std::string& remote_command = "", int tensor_shards = 1, const std::string& more = "",
                         const std::filesystem::path& llm = {}) {
  const auto ports = free_ports(2 * int(nodes.size()));
  std::ostringstream y;
  y << "model:\n  path: " << (llm.empty() ? test::source_dir() / "models/demo-llm" : llm).string()
    << "\n  tensor_parallelism_degree: " << tensor_shards
    << "\n  pipeline_parallelism_degree: " << placement.size() << "\n  placement: [";
  for (std::size_t i = 0; i < placement.size(); ++i) y << (i ? ", " : "") << placement[i];
  y << "]\nssms:\n  - path: " << (test::source_dir() / "models/demo-ssm").string() << "\nnodes:\n";
  for (std::size_t i = 0; i < nodes.size(); ++i)
    y << "  - {name: " << nodes[i].name << ", host: " << nodes[i].host << ", port: " << ports[2 * i]
      << ", data_port: " << ports[2 * i + 1] << "}\n";
  y << "head: " << nodes.front().name << "\nserver:\n  host: 127.0.0.1\n  port: " << http_port << "\n";
  if (!remote_command.empty()) y << "launch:\n  remote_command: \"" << remote_command << "\"\n";
  return y.str() + more;
}

// `banyan launch` on a config file, up once it prints the head's endpoint.
struct Launch {
  test::TempDir dir;
  int http_port = free_ports(1).front();
  std::unique_ptr<testkit::ChildProcess> process;

  Launch(const std::vector<NodeSpec>& nodes, const std::vector<std::string>& placement,
         const std::string& remote_command = "", int tensor_shards = 1, const std::string& more = "",
         const std::filesystem::path& llm = {}) {
    std::ofstream(dir / "cluster.yaml") << cluster_yaml(nodes, placement, http_port, remote_command, tensor_shards, more, llm);
    process = std::make_unique<testkit::ChildProcess>(
        std::vector<std::string>{test::banyan_binary().string(), "launch", (dir / "cluster.yaml").string()});
    process->wait_for_output(std::regex("serving on http://127\\.0\\.0\\.1:" + std::to_string(http_port)), 120s);
  }
  ~Launch() {
    if (process->pid() > 0) process->stop(SIGTERM, 60s);
  }
  // The pid of the node's latest process, from launch's "started node NAME (pid N)" lines.
  int pid_of(const std::string& node) const {
    const std::string log = process->error_output();
    const std::regex started("started node " + node + " \\(pid (\\d+)\\)");
    int pid = -1;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), started); it != std::sregex_iterator(); ++it)
      pid = std::stoi((*it)[1]);
    return pid;
  }
  json health() const { return json::parse(testkit::http_request("127.0.0.1", http_port, "GET", "/health").body); }
  // Waits up to `timeout` for /health to say `status`.
  bool health_becomes(const std::string& status, std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (health()["status"] != status) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(100ms);
    }
    return true;
  }
  testkit::Streamed stream(const std::string& mode, int tokens = 40) const {
    return testkit::stream_generation("127.0.0.1", http_port, kPrompt, tokens, mode);
  }
  // The head serves `mode` the text banyan generate gives; if not, says how the stream ended
  // and what launch and its nodes logged.
  void expect_serving(const std::string& mode) const {
    const testkit::Streamed s = stream(mode);
    BOOST_TEST(s.text == test::generated_text(kPrompt, 40, mode),
               "mode " << mode << ": the stream ended with " << s.done.dump() << "\nlogs:\n" << process->error_output());
  }
};

// Streams a long generation, does `fault` once the first token came, and checks that the
// stream ends in an error frame naming `node` within 5 s, that /health says degraded and that a
// new request gets a 503 at once saying `expected`. (The frame says whichever the head noticed
// first: the node's silence, or the data it waited for in vain.)
void fault_mid_stream(const Launch& cluster, const std::function<void()>& fault, const std::string& node,
                      const std::string& expected) {
  testkit::WebSocket ws("127.0.0.1", cluster.http_port);
  ws.send(json{{"request_id", "long"}, {"prompt", kPrompt}, {"max_new_tokens", 400}, {"mode", "incremental"}}.dump());
  const json first = json::parse(ws.receive());
  BOOST_TEST_REQUIRE(first["type"] == "token", first.dump());  // else there is nothing to cut
  fault();
  const auto at = std::chrono::steady_clock::now();
  const testkit::Streamed cut = testkit::read_stream(ws, "long");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - at).count();
  BOOST_TEST(seconds < 5.0);
  BOOST_TEST(cut.done["type"] == "error", cut.done.dump());
  BOOST_TEST(cut.done.dump().find(node) != std::string::npos, cut.done.dump());
  BOOST_TEST(cluster.health_becomes("degraded", 5s), cluster.health().dump());
  const auto refused = testkit::http_request("127.0.0.1", cluster.http_port, "POST", "/v1/completions",
                                             json{{"prompt", kPrompt}, {"max_tokens", 5}}.dump(), "", 10s);
  BOOST_TEST(refused.status == 503);
  BOOST_TEST(refused.body.find(expected) != std::string::npos, refused.body);
}

const std::string kLoopback = "127.0.0.1";

}  // namespace

BOOST_AUTO_TEST_CASE(a_pipeline_over_three_processes_streams_what_one_process_streams) {
  // Stages 0-1 on w1, 2-3 on the head, 4-5 on w2: the head links to the pipeline's start on
  // another node, and its own stage passes on to a third.
  Launch cluster({{"head", kLoopback}, {"w1", kLoopback}, {"w2", kLoopback}}, {"w1", "head", "w2"});
  for (const std::string mode : {"speculative", "incremental"})
    BOOST_TEST(cluster.stream(mode).text == test::generated_text(kPrompt, 40, mode), "mode " << mode);
  BOOST_TEST(cluster.health()["status"] == "ok");
  // The activations went to w2 and the logits came back over the data planes, not inside
  // messages: the head sends its activations (288 floats a token) and receives w1's and, every
  // request being greedy, the summaries of the logits w2 formed (3 floats a row, not 4096).
  const std::string metrics = testkit::http_request("127.0.0.1", cluster.http_port, "GET", "/metrics").body;
  std::map<std::string, double> bytes;
  for (const std::string direction : {"sent", "received"}) {
    std::smatch m;
    BOOST_TEST_REQUIRE(std::regex_search(metrics, m, std::regex("banyan_data_plane_bytes_total\\{direction=\"" + direction + "\"\\} (\\S+)")));
    bytes[direction] = std::stod(m[1]);
    BOOST_TEST(bytes[direction] > 100000.0, direction << ": " << m[1]);
  }
  BOOST_TEST(bytes["received"] > bytes["sent"], "sent " << bytes["sent"] << ", received " << bytes["received"]);
  BOOST_TEST(bytes["received"] < 1.05 * bytes["sent"], "sent " << bytes["sent"] << ", received " << bytes["received"]);
  // Each node's memory actor reports what the node holds, and the head shows every node's (the
  // workers' come with their heartbeats): two f32 layers of the demo LLM at least (3.5 MB each).
  for (const std::string node : {"head", "w1", "w2"}) {
    const std::regex series("banyan_node_weight_bytes\\{node=\"" + node + "\"\\} (\\S+)");
    std::smatch m;
    std::string now;
    for (int tries = 0; tries < 50; ++tries, std::this_thread::sleep_for(100ms)) {
      now = testkit::http_request("127.0.0.1", cluster.http_port, "GET", "/metrics").body;
      if (std::regex_search(now, m, series)) break;
    }
    BOOST_TEST_REQUIRE(std::regex_search(now, m, series), node << " in\n" << now);
    BOOST_TEST(std::stod(m[1]) > 7e6, node << ": " << m[1]);
  }
  const int code = cluster.process->stop(SIGINT, 60s);
  BOOST_TEST(code == 0);
  const std::string log = cluster.process->error_output();
  for (const std::string line : {"[w1] banyan w1: stopped", "[w2] banyan w2: stopped", "[head] banyan serve: stopped"})
    BOOST_TEST(log.find(line) != std::string::npos, line << " in\n" << log);
}

BOOST_AUTO_TEST_CASE(tensor_shards_stream_what_one_process_streams) {
  // Shards together: tp=2 on a worker (summing in shared memory), and pp=2 x tp=2 with the head
  // and the worker each holding a stage of two shards. Shards spread: tp=2 with shard 0 on the
  // head and shard 1 on w1 (a ring between their data planes), and pp=2 x tp=2 with each stage
  // spread over both (the head leads stage 0, w1 stage 1).
  struct Layout {
    std::vector<std::string> placement;
    std::string shown;  // in launch's output when the layout is loaded so
  };
  for (const Layout& layout : {Layout{{"w1"}, "shard 2/2"}, Layout{{"head", "w1"}, "shard 2/2"},
                               Layout{{"[head, w1]"}, "[w1] banyan: loading LLM stage (layers 0-5, shard 2/2)"},
                               Layout{{"[head, w1]", "[w1, head]"}, "[head] banyan: loading LLM stage (layers 3-5, shard 2/2)"}}) {
    Launch cluster({{"head", kLoopback}, {"w1", kLoopback}}, layout.placement, "", 2);
    BOOST_TEST(cluster.process->error_output().find(layout.shown) != std::string::npos, layout.shown);
    for (const std::string mode : {"speculative", "incremental"})
      BOOST_TEST(cluster.stream(mode).text == test::generated_text(kPrompt, 40, mode),
                 "mode " << mode << ", placement " << layout.placement.front() << "...");
  }
}

BOOST_AUTO_TEST_CASE(offloaded_shards_spread_over_nodes_each_stream_their_own_file) {
  // The demo LLM written as its two tensor shards' files only (`banyan convert --tensor-shards 2`):
  // the head holds shard 1 and w1 shard 2, each node opens its shard's file alone and streams it
  // under its own 10 MiB budget, and the text is the single process's.
  test::TempDir models;
  const auto convert = test::run_command(test::shell_quote(test::banyan_binary().string()) + " convert --model " +
                                         test::shell_quote((test::source_dir() / "models/demo-llm").string()) +
                                         " --dtype f32 --tensor-shards 2 --out " + test::shell_quote((models / "demo.banyan").string()));
  BOOST_TEST_REQUIRE(convert.exit_code == 0, convert.err);
  Launch cluster({{"head", kLoopback}, {"w1", kLoopback}}, {"[head, w1]"}, "", 2,
                 "compute:\n  offload: true\n  device_memory_budget: 10\n", models / "demo.banyan");
  const std::string log = cluster.process->error_output();
  const std::vector<std::string> lines = {
      "[head] banyan: loading LLM stage (layers 0-5, shard 1/2) " + (models / "demo.shard1of2.banyan").string(),
      "[w1] banyan: loading LLM stage (layers 0-5, shard 2/2) " + (models / "demo.shard2of2.banyan").string(),
      "[head] banyan: LLM offloaded:", "[w1] banyan: LLM offloaded:"};
  for (const std::string& line : lines)
    BOOST_TEST(log.find(line) != std::string::npos, line << " in\n" << log);
  for (const std::string mode : {"speculative", "incremental"}) cluster.expect_serving(mode);
}

BOOST_AUTO_TEST_CASE(a_killed_node_holding_shards_fails_the_stream_and_its_restart_rejoins) {
  Launch cluster({{"head", kLoopback}, {"w1", kLoopback}}, {"[head, w1]"}, "", 2);
  const int killed = cluster.pid_of("w1");
  fault_mid_stream(cluster, [&] { ::kill(killed, SIGKILL); }, "node w1", "node w1");
  BOOST_TEST(cluster.health_becomes("ok", 60s), cluster.health().dump());
  cluster.expect_serving("speculative");
}

BOOST_AUTO_TEST_CASE(a_killed_worker_fails_the_stream_and_its_restart_rejoins) {
  // w2 holds the last stage and is reached from w1: its death is seen by a worker's link. The KV
  // cache is paged (block tables travel with every pass); the restarted w2's cache starts empty,
  // so the head keeps no prefix cache that would count on what it held.
  Launch cluster({{"head", kLoopback}, {"w1", kLoopback}, {"w2", kLoopback}}, {"head", "w1", "w2"}, "", 1,
                 "limits:\n  kv_cache_tokens: 2048\n");
  BOOST_TEST(cluster.process->error_output().find("prefix caching is off: LLM stages run in other processes") !=
             std::string::npos);
  const int killed = cluster.pid_of("w2");
  fault_mid_stream(cluster, [&] { ::kill(killed, SIGKILL); }, "node w2", "node w2");
  // launch restarts it; it rejoins and the head serves again.
  BOOST_TEST(cluster.health_becomes("ok", 60s), cluster.health().dump());
  BOOST_TEST(cluster.pid_of("w2") != killed);
  cluster.expect_serving("speculative");
}

BOOST_AUTO_TEST_CASE(a_stopped_worker_is_found_silent_and_serves_again_when_it_continues) {
  // A stopped process keeps its connections open and answers nothing, as a dropped link does.
  Launch cluster({{"head", kLoopback}, {"w1", kLoopback}}, {"head", "w1"});
  const int worker = cluster.pid_of("w1");
  fault_mid_stream(cluster, [&] { ::kill(worker, SIGSTOP); }, "node w1", "stopped answering");
  ::kill(worker, SIGCONT);
  BOOST_TEST(cluster.health_becomes("ok", 60s), cluster.health().dump());
  cluster.expect_serving("incremental");
}

namespace {

// A network namespace joined to this one by a veth pair, for a node that launch starts there
// through the cluster's remote command, as it would over ssh; none where `ip netns` does not work.
struct Namespace {
  std::string name, outside, inside, net;
  bool works = false;
  Namespace() {
    const std::string tag = std::to_string(::getpid() % 100000);
    name = "banyan" + tag, outside = "bnyo" + tag, inside = "bnyi" + tag;
    net = "10.213." + std::to_string(::getpid() % 250) + ".";
    if (!sh("ip netns add " + name)) return;
    works = sh("ip link add " + outside + " type veth peer name " + inside + " && ip link set " + inside + " netns " + name +
               " && ip addr add " + net + "1/24 dev " + outside + " && ip link set " + outside + " up && ip netns exec " +
               name + " ip addr add " + net + "2/24 dev " + inside + " && ip netns exec " + name + " ip link set " + inside +
               " up && ip netns exec " + name + " ip link set lo up");
  }
  ~Namespace() { test::run_command("ip netns del " + name + "; ip link del " + outside + " 2>/dev/null"); }
  static bool sh(const std::string& command) { return test::run_command(command).exit_code == 0; }
  std::string remote_command() const {
    return "ip netns exec " + name + " " + test::banyan_binary().string() + " serve --node {node} --config {config}";
  }
  // Cuts the link mid-stream, checks what fault_mid_stream checks, mends it and checks that the
  // head serves again.
  void drop_and_mend(const Launch& cluster) const {
    fault_mid_stream(cluster, [&] { sh("ip link set " + outside + " down"); }, "node w1", "stopped answering");
    BOOST_TEST_REQUIRE(sh("ip link set " + outside + " up"));
    BOOST_TEST(cluster.health_becomes("ok", 120s), cluster.health().dump());
    cluster.expect_serving("speculative");
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_worker_behind_a_dropped_link_is_an_error_and_serves_again_when_it_is_back) {
  const Namespace ns;
  if (!ns.works) {
    BOOST_TEST_MESSAGE("skipped: ip netns does not work here");
    return;
  }
  Launch cluster({{"head", ns.net + "1"}, {"w1", ns.net + "2"}}, {"head", "w1"}, ns.remote_command());
  for (const std::string mode : {"speculative", "incremental"})
    BOOST_TEST(cluster.stream(mode).text == test::generated_text(kPrompt, 40, mode), "mode " << mode);
  ns.drop_and_mend(cluster);
}

BOOST_AUTO_TEST_CASE(tensor_shards_across_a_veth_link_stream_what_one_process_streams_and_survive_its_drop) {
  // Shard 1 of the whole model in the namespace: the ring all-reduce crosses the veth link.
  const Namespace ns;
  if (!ns.works) {
    BOOST_TEST_MESSAGE("skipped: ip netns does not work here");
    return;
  }
  {
    // pp=2 x tp=2, each stage spread over both sides of the link.
    Launch cluster({{"head", ns.net + "1"}, {"w1", ns.net + "2"}}, {"[head, w1]", "[w1, head]"}, ns.remote_command(), 2);
    for (const std::string mode : {"speculative", "incremental"})
      BOOST_TEST(cluster.stream(mode).text == test::generated_text(kPrompt, 40, mode), "pp=2 x tp=2, mode " << mode);
  }
  Launch cluster({{"head", ns.net + "1"}, {"w1", ns.net + "2"}}, {"[head, w1]"}, ns.remote_command(), 2);
  for (const std::string mode : {"speculative", "incremental"})
    BOOST_TEST(cluster.stream(mode).text == test::generated_text(kPrompt, 40, mode), "mode " << mode);
  ns.drop_and_mend(cluster);
}

BOOST_AUTO_TEST_CASE(a_head_whose_workers_never_come_says_which_and_exits) {
  test::TempDir dir;
  std::ofstream(dir / "cluster.yaml") << cluster_yaml({{"head", kLoopback}, {"w1", kLoopback}}, {"head", "w1"},
                                                      free_ports(1).front());
  const auto r = test::run_command(test::shell_quote(test::banyan_binary().string()) + " serve --node head --config " +
                                   test::shell_quote((dir / "cluster.yaml").string()) + " --join-timeout 3");
  BOOST_TEST(r.exit_code != 0);
  BOOST_TEST(r.err.find("did not come together within 3 s") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("node w1 (127.0.0.1:") != std::string::npos, r.err);
  BOOST_TEST(r.out.find("listening") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_bad_cluster_config_starts_nothing) {
  test::TempDir dir;
  std::string yaml = cluster_yaml({{"head", kLoopback}, {"w1", kLoopback}}, {"head", "w9"}, free_ports(1).front());
  std::ofstream(dir / "cluster.yaml") << yaml;
  const auto r = test::run_command(test::shell_quote(test::banyan_binary().string()) + " launch " +
                                   test::shell_quote((dir / "cluster.yaml").string()));
  BOOST_TEST(r.exit_code != 0);
  BOOST_TEST(r.err.find("key 'model.placement': no node is named 'w9'") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("started node") == std::string::npos, r.err);
}
