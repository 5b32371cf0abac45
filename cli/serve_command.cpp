// banyan serve: load the models, start the actor runtime and serve the HTTP/websocket API until
// SIGTERM or SIGINT. Settings come from a YAML file (--config), from flags, or both (flags win).
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fstream>
#include <iostream>

#include "actors/actor_generations.hpp"
#include "actors/llm_stage.hpp"
#include "actors/scheduler.hpp"
#include "actors/ssm.hpp"
#include "actors/text_service.hpp"
#include "cli/commands.hpp"
#include "cli/model_setup.hpp"
#include "cli/option_types.hpp"
#include "config/serve_config.hpp"
#include "engine/engine.hpp"
#include "model/error.hpp"
#include "server/http_server.hpp"

namespace banyan::cli {

namespace {

config::ModelConfig model_config(const std::string& path) {
  config::ModelConfig m;
  m.path = path;
  return m;
}

// The config file's settings (or the defaults), with every flag given on top.
config::ServeConfig serve_config(const Options& o) {
  config::ServeConfig c;
  if (o.has("--config")) {
    c = config::load_serve_config(o.text("--config"));
  } else {
    c.source = "command line";
    c.model.path = model_path(o).string();
    for (const auto& p : ssm_paths(o)) c.ssms.push_back(model_config(p.string()));
  }
  auto set_text = [&](const char* flag, std::string& field) {
    if (o.has(flag)) field = o.text(flag);
  };
  auto set_int = [&](const char* flag, int& field) {
    if (o.has(flag)) field = o.integer(flag);
  };
  if (o.has("--model")) {
    c.model.path = o.text("--model");
    c.ssms.clear();  // the embedded SSM belongs to the embedded model
  }
  if (o.has("--ssm")) {
    c.ssms.clear();
    for (const auto& p : o.values("--ssm")) c.ssms.push_back(model_config(p));
  }
  set_text("--tokenizer", c.model.tokenizer);
  set_text("--dtype", c.model.dtype);
  for (auto& s : c.ssms) set_text(o.has("--ssm-dtype") ? "--ssm-dtype" : "--dtype", s.dtype);
  set_text("--kv-dtype", c.compute.kv_dtype);
  set_text("--device", c.compute.device);
  set_int("--threads", c.compute.threads);
  set_int("--pipeline-stages", c.compute.pipeline_stages);
  set_int("--memory-budget", c.compute.device_memory_budget);
  if (o.has("--memory-budget")) c.compute.offload = c.compute.device_memory_budget > 0;
  set_int("--offload-reserve", c.compute.offload_reserve_space_size);
  set_int("--tree-width", c.speculation.tree_width);
  set_int("--tree-depth", c.speculation.tree_depth);
  set_int("--max-requests-per-batch", c.limits.max_requests_per_batch);
  set_int("--max-tokens-per-batch", c.limits.max_tokens_per_batch);
  set_int("--max-sequence-length", c.limits.max_sequence_length);
  set_int("--max-new-tokens", c.limits.max_new_tokens);
  set_text("--host", c.server.host);
  set_int("--port", c.server.port);
  set_int("--actor-port", c.server.actor_port);
  if (o.has("--api-key")) c.server.api_keys = o.values("--api-key");
  if (o.has("--shutdown-grace")) c.server.shutdown_grace_s = o.number("--shutdown-grace");
  config::validate(c);
  return c;
}

ModelChoice model_choice(const config::ServeConfig& c) {
  auto model = [&](const config::ModelConfig& m, const std::string& key) {
    ModelChoice::Model out{m.path, {}};
    out.options.linear = parse_format_value(key, m.dtype);
    out.options.kv_cache = c.compute.kv_dtype == "f16" ? DType::f16 : DType::f32;
    return out;
  };
  ModelChoice choice;
  choice.llm = model(c.model, "model.dtype");
  if (c.compute.offload) {
    choice.llm.options.memory_budget = std::size_t(c.compute.device_memory_budget) << 20;
    choice.llm.options.offload_reserve = std::size_t(c.compute.offload_reserve_space_size) << 20;
  }
  for (const auto& s : c.ssms) choice.ssms.push_back(model(s, "ssms.dtype"));
  choice.tokenizer = c.model.tokenizer.empty() ? tokenizer_beside(c.model.path) : std::filesystem::path(c.model.tokenizer);
  choice.device = c.compute.device;
  choice.threads = c.compute.threads;
  choice.pipeline_stages = c.compute.pipeline_stages;
  return choice;
}

std::string read_web_page(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read the web page (--web-page '' serves none)");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int serve_command(int argc, char** argv) {
  Options o("serve", "[--config serve.yaml] [--model PATH] [--ssm PATH]... [--host H] [--port N] [options]",
            "Serves a model over HTTP on one port: websocket token streaming at /v1/stream, OpenAI-style\n"
            "POST /v1/completions (with \"stream\": true for server-sent events), GET /v1/models, /health,\n"
            "/metrics (Prometheus) and a web page at /. Settings come from --config, from the flags, or both\n"
            "(flags win). SIGTERM or SIGINT stops it: no new requests, running ones get --shutdown-grace\n"
            "seconds to finish, the rest are cancelled, exit code 0.");
  o.add("--config", "FILE", "YAML serving config (every key, with its default: examples/serve.yaml)");
  add_model_options(o);
  o.add("--tree-width", "W", "beams (greedy) or sampled chains per SSM");
  o.add("--tree-depth", "D", "speculated tokens along each beam");
  o.add("--max-requests-per-batch", "N", "requests served at once (KV-cache slots)");
  o.add("--max-tokens-per-batch", "N", "tokens per LLM pass");
  o.add("--max-sequence-length", "N", "prompt + generated tokens (0: the model's maximum)");
  o.add("--max-new-tokens", "N", "the most tokens one request may ask for");
  o.add("--pipeline-stages", "N", "split the LLM's layers over N stage actors passing activations (default 1)");
  o.add("--remote-stage", "HOST:PORT",
        "the LLM's later layers run in a `banyan stage` process there; this one keeps the layers before them");
  o.add("--host", "ADDRESS", "address to listen on (default 127.0.0.1)");
  o.add("--port", "N", "port to listen on; 0 picks a free one (default 8080)");
  o.add("--actor-port", "N", "also serve the client library (banyan/client.hpp) on this port; 0: a free one");
  o.repeatable("--api-key", "KEY", "accept only requests bearing this key (Authorization: Bearer KEY)");
  o.add("--shutdown-grace", "SECONDS", "how long running requests may finish after SIGTERM (default 10)");
  o.add("--web-page", "FILE", "the HTML page served at / ('' for none)", std::string(BANYAN_WEB_PAGE));
  if (!o.parse(argc, argv)) return 0;
  if (!o.positional().empty()) throw UsageError("unexpected argument '" + o.positional()[0] + "'");

  const config::ServeConfig c = serve_config(o);
  const std::string web_page = read_web_page(o.text("--web-page"));
  // Bind before loading: a taken port fails in a moment, not after the weights are read.
  server::HttpServer http(c.server.host, c.server.port);

  caf::actor_system_config actor_config;
  actors::add_message_types(actor_config);
  if (c.server.actor_port >= 0 || o.has("--remote-stage")) actor_config.load<caf::io::middleman>();
  auto system = std::make_unique<caf::actor_system>(actor_config);
  ModelChoice choice = model_choice(c);
  actors::llm_stage_actor remote;  // the first stage in another process, if any
  if (o.has("--remote-stage")) {
    const auto [host, port] = host_and_port(o.text("--remote-stage"), "--remote-stage");
    remote = actors::connect_stage(*system, host, port);
    choice.local_layers = actors::stage_layers(*system, remote).first;
  }
  LoadedModels m = load_models(choice);
  EngineOptions e;
  e.limits = {c.limits.max_requests_per_batch, c.limits.max_tokens_per_batch, c.limits.max_sequence_length,
              c.limits.max_tree_tokens};
  e.tree = {c.speculation.tree_width, c.speculation.tree_depth};

  // The LLM in this thread, or as stage actors passing activations down the pipeline.
  std::vector<actors::llm_stage_actor> stages;
  std::unique_ptr<LlmRunner> llm;
  if (m.llm_stages.empty()) {
    llm = std::make_unique<LocalLlm>(*m.llm);
  } else {
    const LlamaConfig config = m.llm_stages.front()->config();
    stages = actors::spawn_llm_stages(*system, m.llm_stages, remote);
    llm = std::make_unique<actors::StagedLlm>(*system, stages.front(), config);
  }
  remote = nullptr;  // the last local stage holds it
  // Each SSM in its own actor: several expand their trees at the same time.
  std::vector<LlamaConfig> ssm_configs;
  for (const auto& s : m.ssms) ssm_configs.push_back(s->config());
  std::vector<actors::ssm_actor> ssm_handles = actors::spawn_ssms(*system, m.ssms);
  actors::ActorSsms ssms(*system, ssm_handles, ssm_configs);
  Engine engine(*llm, ssms, e);
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
  std::vector<const PagedWeights*> paged;  // the LLM's, or its stages'
  if (m.llm && m.llm->paged()) paged.push_back(m.llm->paged());
  for (const auto& stage : m.llm_stages)
    if (stage->paged()) paged.push_back(stage->paged());
  if (!paged.empty()) g.offload_stats = [paged] { return sum_stats(paged); };
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
  for (auto& s : stages) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  stages.clear();
  for (auto& s : ssm_handles) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  ssm_handles.clear();
  system.reset();
  std::cerr << "banyan serve: stopped\n";
  return 0;
}

}  // namespace banyan::cli
