#include "cli/serve_settings.hpp"

#include "cli/option_types.hpp"

namespace banyan::cli {

namespace {

config::ModelConfig model_config(const std::string& path) {
  config::ModelConfig m;
  m.path = path;
  return m;
}

}  // namespace

void add_serve_options(Options& o) {
  o.add("--config", "FILE", "YAML serving config (every key, with its default: examples/serve.yaml)");
  add_model_options(o);
  o.add("--tree-width", "W", "beams (greedy) or sampled chains per SSM");
  o.add("--tree-depth", "D", "speculated tokens along each beam");
  o.add("--max-requests-per-batch", "N", "requests served at once (KV-cache slots)");
  o.add("--max-tokens-per-batch", "N", "tokens per LLM pass");
  o.add("--max-sequence-length", "N", "prompt + generated tokens (0: the model's maximum)");
  o.add("--max-new-tokens", "N", "the most tokens one request may ask for");
  o.add("--kv-cache-tokens", "N", "the LLM's KV cache: N tokens for all requests together (default 0: a whole sequence each)");
  o.add("--kv-block-rows", "N", "tokens per block of the paged KV cache (default 16; 0: not paged)");
  o.flag("--no-prefix-cache", "paged: compute every prompt whole, even where another's blocks hold its start");
  o.add("--pipeline-stages", "N", "split the LLM's layers over N stage actors passing activations (default 1)");
  o.add("--tensor-shards", "N", "split each stage's heads and MLP columns over N tensor shards computing side by side (default 1)");
  o.add("--host", "ADDRESS", "address to listen on (default 127.0.0.1)");
  o.add("--port", "N", "port to listen on; 0 picks a free one (default 8080)");
  o.add("--actor-port", "N", "also serve the client library (banyan/client.hpp) on this port; 0: a free one");
  o.repeatable("--api-key", "KEY", "accept only requests bearing this key (Authorization: Bearer KEY)");
  o.add("--shutdown-grace", "SECONDS", "how long running requests may finish after SIGTERM (default 10)");
}

// The config file's settings (or the defaults), with every flag given on top.
config::ServeConfig serve_config(const Options& o, const config::ServeConfig* base) {
  config::ServeConfig c;
  if (base) {
    c = *base;
  } else if (o.has("--config")) {
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
  set_int("--tensor-shards", c.model.tensor_parallelism_degree);
  set_int("--memory-budget", c.compute.device_memory_budget);
  if (o.has("--memory-budget")) c.compute.offload = c.compute.device_memory_budget > 0;
  set_int("--offload-reserve", c.compute.offload_reserve_space_size);
  set_int("--tree-width", c.speculation.tree_width);
  set_int("--tree-depth", c.speculation.tree_depth);
  set_int("--max-requests-per-batch", c.limits.max_requests_per_batch);
  set_int("--max-tokens-per-batch", c.limits.max_tokens_per_batch);
  set_int("--max-sequence-length", c.limits.max_sequence_length);
  set_int("--max-new-tokens", c.limits.max_new_tokens);
  set_int("--kv-cache-tokens", c.limits.kv_cache_tokens);
  set_int("--kv-block-rows", c.limits.kv_block_rows);
  if (o.has("--no-prefix-cache")) c.limits.kv_prefix_caching = false;
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
    out.options.kv_cache = parse_kv_dtype_value("compute.kv_dtype", c.compute.kv_dtype);
    return out;
  };
  ModelChoice choice;
  choice.llm = model(c.model, "model.dtype");
  if (c.compute.offload) {
    choice.paging = {.budget = std::size_t(c.compute.device_memory_budget) << 20,
                     .reserve = std::size_t(c.compute.offload_reserve_space_size) << 20};
  }
  for (const auto& s : c.ssms) choice.ssms.push_back(model(s, "ssms.dtype"));
  choice.tokenizer = c.model.tokenizer.empty() ? tokenizer_beside(c.model.path) : std::filesystem::path(c.model.tokenizer);
  choice.device = c.compute.device;
  choice.threads = c.compute.threads;
  choice.pipeline_stages = c.compute.pipeline_stages;
  choice.tensor_shards = c.model.tensor_parallelism_degree;
  return choice;
}

}  // namespace banyan::cli
