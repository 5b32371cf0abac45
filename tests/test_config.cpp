// serve.yaml: a full file parses; every mistake names the file, the line and the key.
#define BOOST_TEST_MODULE test_config
#include <boost/test/unit_test.hpp>

#include "config/serve_config.hpp"
#include "scheduler/tree_expansion.hpp"

using namespace banyan::config;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_serve_config(yaml, "/etc/banyan/serve.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

void expect(const std::string& yaml, const std::string& part) {
  const std::string msg = error_of(yaml);
  BOOST_TEST_INFO("message: " << msg);
  BOOST_TEST(msg.find(part) != std::string::npos, "expected '" << part << "'");
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_full_file) {
  const auto c = parse_serve_config(R"(
model:
  path: models/demo-llm
  dtype: int4
ssms:
  - path: /abs/demo-ssm
    dtype: int8
  - path: other-ssm
speculation: {tree_width: 2, tree_depth: 6}
limits:
  max_requests_per_batch: 16
  max_tokens_per_batch: 1024
  max_new_tokens: 256
compute:
  threads: 2
  kv_dtype: f16
  offload: true
  device_memory_budget: 300
server:
  host: 0.0.0.0
  port: 9000
  api_keys: [secret-1, secret-2]
)",
                                    "/etc/banyan/serve.yaml");
  BOOST_TEST(c.model.path == "/etc/banyan/models/demo-llm");  // relative to the YAML file
  BOOST_TEST(c.model.dtype == "int4");
  BOOST_TEST(c.ssms.size() == 2u);
  BOOST_TEST(c.ssms[0].path == "/abs/demo-ssm");
  BOOST_TEST(c.ssms[1].dtype == "f32");
  BOOST_TEST(c.speculation.tree_width == 2);
  BOOST_TEST(c.limits.max_requests_per_batch == 16);
  BOOST_TEST(c.limits.max_sequence_length == 0);  // default kept
  BOOST_TEST(c.compute.kv_dtype == "f16");
  BOOST_TEST((c.compute.offload && c.compute.device_memory_budget == 300 && c.compute.offload_reserve_space_size == 0));
  BOOST_TEST(c.server.port == 9000);
  BOOST_TEST(c.server.api_keys.size() == 2u);
}

BOOST_AUTO_TEST_CASE(speculation_defaults_are_the_engines) {
  const SpeculationConfig c;
  BOOST_TEST(c.tree_width == banyan::TreeShape{}.width);
  BOOST_TEST(c.tree_depth == banyan::TreeShape{}.depth);
}

BOOST_AUTO_TEST_CASE(the_example_file_holds_the_defaults) {
  const ServeConfig c = load_serve_config(BANYAN_SOURCE_DIR "/examples/serve.yaml");
  const ServeConfig d;
  BOOST_TEST(c.model.path == BANYAN_SOURCE_DIR "/models/demo-llm");
  BOOST_TEST_REQUIRE(c.ssms.size() == 1u);
  BOOST_TEST(c.ssms[0].path == BANYAN_SOURCE_DIR "/models/demo-ssm");
  BOOST_TEST(c.model.dtype == d.model.dtype);
  BOOST_TEST(c.speculation.tree_width == d.speculation.tree_width);
  BOOST_TEST(c.speculation.tree_depth == d.speculation.tree_depth);
  BOOST_TEST(c.limits.max_requests_per_batch == d.limits.max_requests_per_batch);
  BOOST_TEST(c.limits.max_tokens_per_batch == d.limits.max_tokens_per_batch);
  BOOST_TEST(c.limits.max_sequence_length == d.limits.max_sequence_length);
  BOOST_TEST(c.limits.max_tree_tokens == d.limits.max_tree_tokens);
  BOOST_TEST(c.limits.max_new_tokens == d.limits.max_new_tokens);
  BOOST_TEST(c.limits.kv_cache_tokens == d.limits.kv_cache_tokens);
  BOOST_TEST(c.limits.kv_block_rows == d.limits.kv_block_rows);
  BOOST_TEST(c.limits.kv_prefix_caching == d.limits.kv_prefix_caching);
  BOOST_TEST(c.compute.device == d.compute.device);
  BOOST_TEST(c.compute.threads == d.compute.threads);
  BOOST_TEST(c.compute.kv_dtype == d.compute.kv_dtype);
  BOOST_TEST(c.compute.pipeline_stages == d.compute.pipeline_stages);
  BOOST_TEST(c.compute.offload == d.compute.offload);
  BOOST_TEST(c.compute.device_memory_budget == d.compute.device_memory_budget);
  BOOST_TEST(c.compute.offload_reserve_space_size == d.compute.offload_reserve_space_size);
  BOOST_TEST(c.server.host == d.server.host);
  BOOST_TEST(c.server.port == d.server.port);
  BOOST_TEST(c.server.actor_port == d.server.actor_port);
  BOOST_TEST(c.server.api_keys.empty());
  BOOST_TEST(c.server.shutdown_grace_s == d.server.shutdown_grace_s);
}

BOOST_AUTO_TEST_CASE(errors_name_file_line_and_key) {
  expect("model:\n  path: x\nlimits:\n  max_requests_per_batch: lots\n",
         "/etc/banyan/serve.yaml:4:27: key 'limits.max_requests_per_batch': expected an integer, got 'lots'");
  expect("model:\n  path: x\nlimts:\n  max_requests_per_batch: 4\n", "serve.yaml:3:1: key 'limts': unknown key");
  expect("model:\n  path: x\nserver:\n  prot: 80\n", "serve.yaml:4:3: key 'server.prot': unknown key (expected one of:");
  expect("model:\n  path: x\n  dtype: int3\n", "key 'model.dtype': must be f32, f16, bf16, int8 or int4, got 'int3'");
  expect("model:\n  dtype: f16\n", "key 'model': missing 'path'");
  expect("model: [a, b]\n", "serve.yaml:1:8: key 'model': expected a mapping of keys");
  expect("model:\n  path: x\nserver:\n  port: 70000\n", "key 'server.port': must be 0 (any free port) to 65535");
  expect("model:\n  path: x\nlimits:\n  max_requests_per_batch: 8\n  max_tokens_per_batch: 4\n",
         "key 'limits.max_tokens_per_batch': must be at least limits.max_requests_per_batch");
  expect("model:\n  path: x\nssms: models\n", "key 'ssms': expected a list of models");
  expect("model:\n  path: x\nlimits:\n  kv_block_rows: -1\n", "key 'limits.kv_block_rows': must be 0 (no paging) to 1024");
  expect("model:\n  path: x\nlimits:\n  kv_block_rows: 0\n  kv_cache_tokens: 4096\n",
         "key 'limits.kv_cache_tokens': needs a paged KV cache");
  expect("model:\n  path: x\nlimits:\n  kv_cache_tokens: -5\n", "key 'limits.kv_cache_tokens': must be 0 (a whole sequence");
  expect("model:\n  path: x\nserver:\n  api_keys: secret\n", "key 'server.api_keys': expected a list of strings");
  expect("model: {path: x\n", "serve.yaml:2:1: not valid YAML");
  expect("", "serve.yaml: the file is empty");
  expect("model:\n  path: x\ncompute:\n  offload: true\n", "key 'compute.device_memory_budget': offload: true needs a budget");
  expect("model:\n  path: x\ncompute:\n  offload: maybe\n", "serve.yaml:4:12: key 'compute.offload': expected true or false");
}

BOOST_AUTO_TEST_CASE(missing_file) {
  BOOST_CHECK_EXCEPTION(load_serve_config("/no/such/serve.yaml"), ConfigError, [](const ConfigError& e) {
    return std::string(e.what()) == "/no/such/serve.yaml: cannot open the config file";
  });
}
