#pragma once
// The configuration of a serving node (`banyan serve --config serve.yaml`): models, speculation,
// limits, compute and server settings, validated once at start-up. Every error names the file,
// the line and the key. Values are plain (strings, numbers): the layers above turn them into
// their own types.
#include <stdexcept>
#include <string>
#include <vector>

namespace banyan::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelConfig {
  std::string path;       // relative paths are taken from the YAML file's folder
  std::string tokenizer;  // empty: tokenizer.model beside the weights
  std::string dtype = "f32";
  // The LLM in a cluster config (config/cluster_config.hpp) only: how it is split over nodes.
  int tensor_parallelism_degree = 1;
  int pipeline_parallelism_degree = 1;
  // The node of each pipeline stage, or the nodes its tensor shards are spread over (the
  // first leads); empty: automatic.
  std::vector<std::vector<std::string>> placement;
};

struct SpeculationConfig {  // defaults: TreeShape's (a test holds them equal)
  int tree_width = 1;
  int tree_depth = 4;
};

struct LimitsConfig {
  int max_requests_per_batch = 8;
  int max_tokens_per_batch = 512;
  int max_sequence_length = 0;  // 0: the model's context
  int max_tree_tokens = 63;
  int max_new_tokens = 1024;    // the most a request may ask for
  int kv_cache_tokens = 0;      // the paged KV cache's tokens, all requests together; 0: a whole sequence each
  int kv_block_rows = 16;       // 0: no paging
  bool kv_prefix_caching = true;  // paged: requests reuse the blocks of the prompt prefixes they share
};

struct ComputeConfig {
  std::string device = "cpu";
  int threads = 0;
  std::string kv_dtype = "f32";
  int pipeline_stages = 1;  // the LLM's layers split over this many stage actors
  // Offloading the LLM: at most device_memory_budget MiB of its weights in memory at once, the
  // rest streaming from its `banyan convert` file; offload_reserve_space_size MiB of the budget
  // hold the streamed ones in flight (0: chosen from the budget).
  bool offload = false;
  int device_memory_budget = 0;
  int offload_reserve_space_size = 0;
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  int actor_port = -1;                // the client library's port (CAF); -1: none, 0: any free one
  std::vector<std::string> api_keys;  // empty: no authentication
  double shutdown_grace_s = 10;       // in-flight requests get this long to finish on SIGTERM
};

struct ServeConfig {
  std::string source;  // the file it came from
  ModelConfig model;
  std::vector<ModelConfig> ssms;
  SpeculationConfig speculation;
  LimitsConfig limits;
  ComputeConfig compute;
  ServerConfig server;
};

// Reads and validates a YAML file; throws ConfigError "FILE:LINE:COLUMN: key 'a.b': what".
ServeConfig load_serve_config(const std::string& path);
// The same from text; `source` names it in errors and anchors relative paths (its folder).
ServeConfig parse_serve_config(const std::string& yaml_text, const std::string& source);
// Checks the values' ranges and combinations (also for configs built from flags).
void validate(const ServeConfig& config);

}  // namespace banyan::config
