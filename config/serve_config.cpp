#include "config/serve_config.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

#include "config/yaml_section.hpp"

namespace banyan::config {

namespace {

// `placement: [a, [b, c]]`: stage 0 on a, stage 1's tensor shards spread over b and c.
void read_placement(Section& s, std::vector<std::vector<std::string>>& out) {
  const YAML::Node v = s.get("placement");
  if (!v || v.IsNull()) return;
  const auto fail = [&](const YAML::Node& at) {
    fail_at(at, s.join("placement"), s.source(), "expected a list with a node name, or a list of node names, per stage");
  };
  if (!v.IsSequence()) fail(v);
  for (const auto& stage : v) {
    std::vector<std::string> nodes;
    if (stage.IsScalar()) nodes.push_back(stage.Scalar());
    if (stage.IsSequence())
      for (const auto& n : stage) {
        if (!n.IsScalar()) fail(n);
        nodes.push_back(n.Scalar());
      }
    if (nodes.empty()) fail(stage);
    out.push_back(std::move(nodes));
  }
}

// `parallel`: the LLM of a cluster config, which also says how it is split over nodes.
ModelConfig read_model(Section s, const std::filesystem::path& base, bool parallel = false) {
  ModelConfig m;
  s.read("path", m.path, "a path");
  s.read("tokenizer", m.tokenizer, "a path");
  s.read("dtype", m.dtype, "f32, f16, bf16, int8 or int4");
  if (parallel) {
    s.read("tensor_parallelism_degree", m.tensor_parallelism_degree, "an integer");
    s.read("pipeline_parallelism_degree", m.pipeline_parallelism_degree, "an integer");
    read_placement(s, m.placement);
  }
  s.finish();
  if (m.path.empty()) s.fail(s.node(), "missing 'path'");
  auto anchor = [&](std::string& p) {
    if (!p.empty() && std::filesystem::path(p).is_relative()) p = (base / p).lexically_normal().string();
  };
  anchor(m.path);
  anchor(m.tokenizer);
  return m;
}

void check(bool ok, const std::string& source, const std::string& key, const std::string& what) {
  if (!ok) throw ConfigError(source + ": key '" + key + "': " + what);
}

bool is_dtype(const std::string& d) { return d == "f32" || d == "f16" || d == "bf16" || d == "int8" || d == "int4"; }

}  // namespace

void validate(const ServeConfig& c) {
  const std::string& src = c.source;
  check(!c.model.path.empty(), src, "model.path", "the model to serve is required");
  check(is_dtype(c.model.dtype), src, "model.dtype", "must be f32, f16, bf16, int8 or int4, got '" + c.model.dtype + "'");
  for (std::size_t i = 0; i < c.ssms.size(); ++i)
    check(is_dtype(c.ssms[i].dtype), src, "ssms[" + std::to_string(i) + "].dtype", "must be f32, f16, bf16, int8 or int4");
  check(c.speculation.tree_width >= 1 && c.speculation.tree_width <= 8, src, "speculation.tree_width", "must be 1 to 8");
  check(c.speculation.tree_depth >= 0 && c.speculation.tree_depth <= 16, src, "speculation.tree_depth", "must be 0 to 16");
  const auto& l = c.limits;
  check(l.max_requests_per_batch >= 1 && l.max_requests_per_batch <= 1024, src, "limits.max_requests_per_batch",
        "must be 1 to 1024");
  check(l.max_tokens_per_batch >= l.max_requests_per_batch, src, "limits.max_tokens_per_batch",
        "must be at least limits.max_requests_per_batch");
  check(l.max_sequence_length == 0 || l.max_sequence_length >= 2, src, "limits.max_sequence_length",
        "must be 0 (the model's context) or at least 2");
  check(l.max_tree_tokens >= 0 && l.max_tree_tokens <= 63, src, "limits.max_tree_tokens", "must be 0 to 63");
  check(l.max_new_tokens >= 1, src, "limits.max_new_tokens", "must be positive");
  check(l.kv_cache_tokens >= 0, src, "limits.kv_cache_tokens", "must be 0 (a whole sequence per request) or a number of tokens");
  check(l.kv_block_rows >= 0 && l.kv_block_rows <= 1024, src, "limits.kv_block_rows", "must be 0 (no paging) to 1024");
  check(l.kv_block_rows > 0 || l.kv_cache_tokens == 0, src, "limits.kv_cache_tokens", "needs a paged KV cache (kv_block_rows above 0)");
  check(c.compute.device == "cpu" || c.compute.device == "cuda", src, "compute.device", "must be cpu or cuda");
  check(c.compute.threads >= 0, src, "compute.threads", "must be 0 (one per core) or more");
  check(c.compute.kv_dtype == "f32" || c.compute.kv_dtype == "f16" || c.compute.kv_dtype == "bf16", src,
        "compute.kv_dtype", "must be f32, f16 or bf16");
  check(c.compute.pipeline_stages >= 1 && c.compute.pipeline_stages <= 64, src, "compute.pipeline_stages",
        "must be 1 to 64");
  check(!c.compute.offload || c.compute.device_memory_budget > 0, src, "compute.device_memory_budget",
        "offload: true needs a budget in MiB");
  check(c.compute.device_memory_budget >= 0, src, "compute.device_memory_budget", "must not be negative");
  check(c.compute.offload_reserve_space_size >= 0 && c.compute.offload_reserve_space_size <= c.compute.device_memory_budget,
        src, "compute.offload_reserve_space_size", "must be 0 (chosen from the budget) up to device_memory_budget");
  check(!c.server.host.empty(), src, "server.host", "must not be empty");
  check(c.server.port >= 0 && c.server.port <= 65535, src, "server.port", "must be 0 (any free port) to 65535");
  check(c.server.actor_port >= -1 && c.server.actor_port <= 65535, src, "server.actor_port",
        "must be -1 (none), 0 (any free port) or a port up to 65535");
  check(c.server.shutdown_grace_s >= 0, src, "server.shutdown_grace_s", "must not be negative");
  for (const auto& k : c.server.api_keys) check(!k.empty(), src, "server.api_keys", "keys must not be empty");
}

YAML::Node load_yaml(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": not valid YAML: " + e.msg);
  }
  if (!root || root.IsNull()) throw ConfigError(source + ": the file is empty");
  return root;
}

ServeConfig read_serve(Section& top, const std::string& source, bool cluster) {
  ServeConfig c;
  c.source = source;
  const std::filesystem::path base = std::filesystem::path(source).parent_path();
  c.model = read_model(top.child("model"), base, cluster);
  const YAML::Node ssms = top.get("ssms");
  if (ssms && !ssms.IsNull()) {
    if (!ssms.IsSequence()) fail_at(ssms, "ssms", source, "expected a list of models");
    for (std::size_t i = 0; i < ssms.size(); ++i)
      c.ssms.push_back(read_model(Section(ssms[i], "ssms[" + std::to_string(i) + "]", source), base));
  }
  Section spec = top.child("speculation");
  spec.read("tree_width", c.speculation.tree_width, "an integer");
  spec.read("tree_depth", c.speculation.tree_depth, "an integer");
  spec.finish();
  Section lim = top.child("limits");
  lim.read("max_requests_per_batch", c.limits.max_requests_per_batch, "an integer");
  lim.read("max_tokens_per_batch", c.limits.max_tokens_per_batch, "an integer");
  lim.read("max_sequence_length", c.limits.max_sequence_length, "an integer");
  lim.read("max_tree_tokens", c.limits.max_tree_tokens, "an integer");
  lim.read("max_new_tokens", c.limits.max_new_tokens, "an integer");
  lim.read("kv_cache_tokens", c.limits.kv_cache_tokens, "an integer");
  lim.read("kv_block_rows", c.limits.kv_block_rows, "an integer");
  lim.read("kv_prefix_caching", c.limits.kv_prefix_caching, "true or false");
  lim.finish();
  Section comp = top.child("compute");
  comp.read("device", c.compute.device, "cpu or cuda");
  comp.read("threads", c.compute.threads, "an integer");
  comp.read("kv_dtype", c.compute.kv_dtype, "f32, f16 or bf16");
  comp.read("pipeline_stages", c.compute.pipeline_stages, "an integer");
  comp.read("offload", c.compute.offload, "true or false");
  comp.read("device_memory_budget", c.compute.device_memory_budget, "an integer (MiB)");
  comp.read("offload_reserve_space_size", c.compute.offload_reserve_space_size, "an integer (MiB)");
  comp.finish();
  Section srv = top.child("server");
  srv.read("host", c.server.host, "a host name or address");
  srv.read("port", c.server.port, "a port number");
  srv.read("actor_port", c.server.actor_port, "a port number");
  srv.read_list("api_keys", c.server.api_keys);
  srv.read("shutdown_grace_s", c.server.shutdown_grace_s, "a number of seconds");
  srv.finish();
  return c;
}

ServeConfig parse_serve_config(const std::string& text, const std::string& source) {
  const YAML::Node root = load_yaml(text, source);
  Section top(root, "", source);
  ServeConfig c = read_serve(top, source, false);
  top.finish();
  validate(c);
  return c;
}

ServeConfig load_serve_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the config file");
  return parse_serve_config(std::string(std::istreambuf_iterator<char>(in), {}), path);
}

}  // namespace banyan::config
