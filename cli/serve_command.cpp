// banyan serve: load the models, start the actor runtime and serve the HTTP/websocket API until
// SIGTERM or SIGINT. Settings come from a YAML file (--config), from flags, or both (flags win).
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fstream>
#include <iostream>

#include "actors/actor_generations.hpp"
#include "actors/llm_stage.hpp"
#include "actors/memory.hpp"
#include "actors/node.hpp"
#include "actors/scheduler.hpp"
#include "actors/ssm.hpp"
#include "actors/text_service.hpp"
#include "cli/cluster_node.hpp"
#include "cli/commands.hpp"
#include "cli/option_types.hpp"
#include "cli/serve_settings.hpp"
#include "engine/engine.hpp"
#include "model/error.hpp"
#include "server/http_server.hpp"

namespace banyan::cli {

namespace {

std::string read_web_page(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read the web page (--web-page '' serves none)");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A worker node of a cluster: its stages, published for the others; no gateway, no SSMs.
int serve_worker(const ClusterRole& role) {
  ModelChoice choice = model_choice(role.cluster.serve);
  choice.ssms.clear();
  auto bulk = make_data_plane(listen_of(role));
  auto health = std::make_shared<actors::ClusterHealth>();
  choice.stages = stage_loads(role, bulk, health);
  const RunsOf runs = [&](std::vector<std::shared_ptr<PipelineStage>> stages) { return stage_runs(role, std::move(stages)); };
  return serve_stage_node(role.node.name, choice, runs, listen_of(role), bulk, health);
}

}  // namespace

int serve_command(int argc, char** argv) {
  Options o("serve", "[--config serve.yaml] [--model PATH] [--ssm PATH]... [--host H] [--port N] [options]",
            "Serves a model over HTTP on one port: websocket token streaming at /v1/stream, OpenAI-style\n"
            "POST /v1/completions (with \"stream\": true for server-sent events), GET /v1/models, /health,\n"
            "/metrics (Prometheus) and a web page at /. Settings come from --config, from the flags, or both\n"
            "(flags win). SIGTERM or SIGINT stops it: no new requests, running ones get --shutdown-grace\n"
            "seconds to finish, the rest are cancelled, exit code 0.\n"
            "With --node NAME and a cluster config (`banyan launch` starts every node so), it runs that node:\n"
            "the head serves as above once every node has joined; the others hold their pipeline stages.");
  add_serve_options(o);
  o.add("--remote-stage", "HOST:PORT",
        "the LLM's later layers run in a `banyan stage` process there; this one keeps the layers before them");
  o.add("--data-port", "N",
        "with --remote-stage: pass activations and logits over a data plane (UCX) on --host:N (0: a free port) "
        "rather than inside messages; the stage needs one too (banyan stage --data-port)");
  o.add("--node", "NAME", "run this node of the cluster config given with --config");
  o.add("--join-timeout", "SECONDS", "how long the head waits for the other nodes to join", "300");
  o.add("--web-page", "FILE", "the HTML page served at / ('' for none)", std::string(BANYAN_WEB_PAGE));
  if (!o.parse(argc, argv)) return 0;
  if (!o.positional().empty()) throw UsageError("unexpected argument '" + o.positional()[0] + "'");

  std::optional<ClusterRole> role;
  if (o.has("--node")) {
    if (!o.has("--config")) throw UsageError("--node needs --config CLUSTER.yaml");
    if (o.has("--remote-stage") || o.has("--pipeline-stages") || o.has("--tensor-shards") || o.has("--data-port"))
      throw UsageError("a cluster node's stages, shards and data plane come from its config, not from --remote-stage, "
                       "--pipeline-stages, --tensor-shards or --data-port");
    role = cluster_role(config::load_cluster_config(o.text("--config")), o.text("--node"));
    role->cluster.serve = serve_config(o, &role->cluster.serve);
    if (!role->head) return serve_worker(*role);
  }
  if (o.has("--data-port") && !o.has("--remote-stage")) throw UsageError("--data-port goes with --remote-stage");
  const config::ServeConfig c = role ? role->cluster.serve : serve_config(o);
  const std::string web_page = read_web_page(o.text("--web-page"));
  // Bind before loading: a taken port fails in a moment, not after the weights are read.
  server::HttpServer http(c.server.host, c.server.port);

  caf::actor_system_config actor_config;
  actors::configure_actor_system(actor_config);
  if (c.server.actor_port >= 0 || o.has("--remote-stage") || role) actor_config.load<caf::io::middleman>();
  auto system = std::make_unique<caf::actor_system>(actor_config);
  ModelChoice choice = model_choice(c);
  std::optional<actors::RemoteStage> remote;  // where the local stages pass their output, outside a cluster
  std::shared_ptr<actors::Bulk> bulk =
      role ? make_data_plane(listen_of(*role))
           : make_data_plane({.host = c.server.host,
                              .bind = c.server.host,
                              .data_port = o.has("--data-port") ? o.integer("--data-port") : -1});
  auto health = std::make_shared<actors::ClusterHealth>();
  if (role) {
    choice.stages = stage_loads(*role, bulk, health);
  } else if (o.has("--remote-stage")) {
    const auto [host, port] = host_and_port(o.text("--remote-stage"), "--remote-stage");
    const auto firsts = actors::node_stage_layers(*system, host, port);
    if (firsts.empty()) throw Error("the node at " + o.text("--remote-stage") + " holds no stages");
    remote = actors::RemoteStage{{"", host, port}, firsts.front()};
    choice.stages.emplace();
    for (const LayerRange& r : split_layers(firsts.front(), choice.pipeline_stages)) choice.stages->push_back({.layers = r});
  }
  LoadedModels m = load_models(choice);
  // The memory actor owns the weights; the actors that compute with them get them from it.
  actors::memory_actor memory = actors::spawn_memory(*system, std::move(m.weights));
  const std::shared_ptr<NodeWeights> weights = actors::weights_of(*system, memory);
  const std::string node_name = role ? role->node.name : "serve";
  EngineOptions e;
  e.limits = {c.limits.max_requests_per_batch, c.limits.max_tokens_per_batch, c.limits.max_sequence_length,
              c.limits.max_tree_tokens,        c.limits.kv_cache_tokens,      c.limits.kv_block_rows,
              c.limits.kv_prefix_caching};
  e.tree = {c.speculation.tree_width, c.speculation.tree_depth};
  // A stage in another process starts with an empty KV cache when its node restarts, and
  // nothing tells the scheduler which cached blocks went with it: no prefix caching then.
  if (e.limits.kv_block_rows > 0 && e.limits.kv_prefix_caching && (remote || (role && !other_nodes(*role).empty()))) {
    e.limits.kv_prefix_caching = false;
    std::cerr << "banyan serve: prefix caching is off: LLM stages run in other processes, whose KV caches a restart empties\n";
  }

  // The LLM in this thread, or as stage actors passing activations down the pipeline, maybe on
  // to other processes: then it serves once they are all there.
  std::unique_ptr<actors::Node> node;
  std::unique_ptr<LlmRunner> llm;
  if (weights->llm) {
    llm = std::make_unique<LocalLlm>(*weights->llm);
  } else {
    auto runs = role ? stage_runs(*role, weights->llm_stages)
                     : std::vector<actors::StageRun>{{.stages = weights->llm_stages, .next = remote}};
    node = std::make_unique<actors::Node>(*system, node_name, std::move(runs),
                                          role ? other_nodes(*role) : std::vector<actors::NodeAddress>{}, bulk, health,
                                          memory);
    if (role) node->publish(listen_of(*role).bind, role->node.port);
    node->wait_until_joined(std::chrono::seconds(o.integer("--join-timeout")), [](const auto& problems) {
      for (const auto& p : problems) std::cerr << "banyan serve: waiting: " << p << "\n";
    });
    llm = std::make_unique<actors::StagedLlm>(*system, node->run_at(0), m.llm_config);
  }
  // Each SSM in its own actor: several expand their trees at the same time.
  std::vector<LlamaConfig> ssm_configs;
  for (const auto& s : weights->ssms) ssm_configs.push_back(s->config());
  std::vector<actors::ssm_actor> ssm_handles = actors::spawn_ssms(*system, weights->ssms);
  actors::ActorSsms ssms(*system, ssm_handles, ssm_configs);
  Engine engine(*llm, ssms, e);
  std::cerr << "banyan serve: KV cache: " << engine.requests().limits().describe_kv_cache() << "\n";
  actors::SchedulerGauges gauges;
  actors::scheduler_actor scheduler = actors::spawn_scheduler(*system, engine, &gauges);
  std::unique_ptr<actors::Generations> generations = actors::make_actor_generations(*system, scheduler);
  actors::text_service_actor text_service;
  int actor_port = -1;
  if (c.server.actor_port >= 0) {
    text_service = actors::spawn_text_service(*system, scheduler, *m.tokenizer);
    auto published = system->middleman().publish(text_service, std::uint16_t(c.server.actor_port),
                                                 c.server.host.c_str(), true);
    if (!published)
      throw Error("cannot serve actors on " + c.server.host + ":" + std::to_string(c.server.actor_port) + ": " +
                  system->render(published.error()));
    actor_port = *published;
  }

  server::GatewayOptions g;
  g.model_name = std::filesystem::path(c.model.path).filename().string();
  g.limits.max_new_tokens = c.limits.max_new_tokens;
  g.limits.max_prompt_tokens = engine.requests().limits().max_sequence_length - 1;
  g.api_keys = c.server.api_keys;
  g.web_page = web_page;
  g.memory = [&system = *system, memory, node_name, watched = node ? node->watched_memory() : nullptr] {
    std::vector<server::NodeMemory> out{{node_name, actors::report_of(system, memory)}};
    if (watched)
      for (auto& r : watched->reports()) out.push_back(std::move(r));
    return out;
  };
  if (node) g.problems = [health = node->health()] { return health->problems(); };
  if (bulk) g.data_plane_bytes = [bulk] { return server::DataPlaneBytes{bulk->sent_bytes(), bulk->received_bytes()}; };
  server::Gateway gateway(*generations, *m.tokenizer, gauges, g, http.poster());

  http.serve(gateway, std::chrono::milliseconds(long(c.server.shutdown_grace_s * 1000)), [&] {
    if (actor_port >= 0)
      std::cout << "banyan serve: client library (banyan/client.hpp) on " << c.server.host << ":" << actor_port << "\n";
    std::cout << "banyan serve: " << g.model_name << (ssms.size() == 0 ? "" : " with " + std::to_string(ssms.size()) + " SSM(s)")
              << " listening on http://" << c.server.host << ":" << http.port() << std::endl;
  });

  // The runtime goes first: its last callbacks post to the network thread's queue, which must
  // still exist (it is never run again).
  generations.reset();
  if (text_service) {
    system->middleman().unpublish(text_service, std::uint16_t(actor_port));
    caf::anon_send_exit(text_service, caf::exit_reason::user_shutdown);
    text_service = actors::text_service_actor();
  }
  caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
  scheduler = nullptr;
  for (auto& s : ssm_handles) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  ssm_handles.clear();
  node.reset();
  caf::anon_send_exit(memory, caf::exit_reason::user_shutdown);
  memory = nullptr;
  system.reset();
  std::cerr << "banyan serve: stopped\n";
  return 0;
}

}  // namespace banyan::cli
