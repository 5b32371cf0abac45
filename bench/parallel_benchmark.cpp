// bench parallel: the LLM split into pipeline stages, against the same LLM whole, in one run:
// pp=1 (one model in this thread), pp=2 as two stage actors in this process, and pp=2 with the
// second stage in another process (`banyan stage` on loopback), its activations and logits inside
// CAF's messages or over the UCX data plane.
// One request at a time runs through one stage at a time, so a split adds only communication:
// its share of a step is 1 - (pp=1 time) / (split time). Tensor parallelism (tp=2: two shards in
// this process, each with half the threads, summing in shared memory or over a UCX ring; and
// pp=2 x tp=2; tp=2 with shard 1 in another process, `banyan serve --node`, summing over a UCX
// ring between the processes) splits the compute too: its communication share is the time shard 0
// spends in its all-reduces
// (waiting for the other shard included) over the run's. Greedy outputs of the pipeline rows must
// match pp=1's exactly (a stage computes what the whole model computes); tensor shards sum each
// layer's halves in another order, so on random weights (flat logits, near ties) their greedy
// tokens may part from pp=1's: the run reports the share that agree before the first difference.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

#include "actors/llm_stage.hpp"
#include "actors/messages.hpp"
#include "actors/node.hpp"
#include "actors/transport/ring_all_reduce.hpp"
#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "cli/option_types.hpp"
#include "cpu/cpu_backend.hpp"
#include "engine/engine.hpp"
#include "engine/local_all_reduce.hpp"
#include "engine/ssm_group.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/random_weights.hpp"
#include "testkit/child_process.hpp"
#include "testkit/free_ports.hpp"

namespace banyan::bench {

namespace {

struct Row {
  std::string layout;
  int batch = 1;
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0, ms_per_step = 0, seconds = 0;
  double all_reduce_seconds = -1;  // tensor-parallel rows: shard 0's time in all-reduces
  std::vector<std::vector<std::int32_t>> outputs;
};

// Of `expected`'s tokens, the share `got` has too, up to each request's first difference.
double agreement(const std::vector<std::vector<std::int32_t>>& got, const std::vector<std::vector<std::int32_t>>& expected) {
  std::size_t same = 0, all = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& e = expected[i];
    const auto& g = got[i];
    std::size_t k = 0;
    while (k < e.size() && k < g.size() && g[k] == e[k]) ++k;
    same += k;
    all += e.size();
  }
  return all ? double(same) / double(all) : 1.0;
}

// Prefills `batch` prompts, then decodes `tokens` each; times the two apart.
// `sampling`: every request's (greedy by default), request i seeded with sampling.seed + i.
Row run(LlmRunner& llm, const std::vector<std::vector<std::int32_t>>& prompts, int tokens, const SamplingParams& sampling) {
  LocalSsms none({});
  EngineOptions e;
  e.limits.max_requests_per_batch = int(prompts.size());
  Engine engine(llm, none, e);
  engine.submit(prompts.front(), {2, {}});  // untimed: first touches of the weights and buffers
  engine.run([](RequestId, std::span<const std::int32_t>) {});

  Row r;
  r.batch = int(prompts.size());
  std::vector<RequestId> ids;
  for (const auto& p : prompts) {
    GenerationConfig g{tokens, sampling};
    g.sampling.seed += ids.size();
    ids.push_back(engine.submit(p, g));
  }
  // Prefill ends when the last request has its first token; decoding is what follows.
  std::set<RequestId> started;
  long long during_decode = 0;
  Stopwatch clock;
  double decode_start = 0;
  engine.run([&](RequestId id, std::span<const std::int32_t> committed) {
    if (started.size() == prompts.size()) {
      during_decode += (long long)committed.size();
      return;
    }
    started.insert(id);
    if (started.size() == prompts.size()) decode_start = clock.seconds();
  });
  const double seconds = clock.seconds() - decode_start;
  long long prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += (long long)p.size();
  r.prefill_tokens_per_s = double(prompt_tokens) / decode_start;
  for (auto id : ids) {
    const Request& q = engine.requests().request(id);
    if (q.state == RequestState::failed) throw Error("request failed: " + q.error);
    r.outputs.emplace_back(q.tokens.begin() + q.prompt_length, q.tokens.end());
  }
  r.decode_tokens_per_s = double(during_decode) / seconds;
  r.seconds = clock.seconds();
  r.ms_per_step = 1000.0 * seconds / double(std::max<long long>(1, during_decode / r.batch));
  return r;
}
// How tensor shards in this process sum their parts.
enum class Sum { shared_memory, ucx_ring };

// Layers [first, end) of `w` as a pipeline stage of `backends.size()` tensor shards.
std::shared_ptr<PipelineStage> stage(const WeightSource& w, const std::vector<std::unique_ptr<Backend>>& backends, int first,
                                     int end, Sum sum = Sum::shared_memory) {
  const auto load = [&](TensorShard shard) {
    ModelOptions o;
    o.shard = shard;
    return std::make_shared<LlamaModel>(w, *backends[std::size_t(shard.rank)], o, LlamaModel::Progress{}, LayerRange{first, end});
  };
  const int shards = int(backends.size());
  std::vector<std::shared_ptr<Collective>> collectives;
  if (shards > 1)
    collectives = sum == Sum::ucx_ring ? transport::local_ring(std::make_shared<transport::DataPlane>(), shards)
                                       : local_all_reduce(shards);
  return sharded_stage(collectives, load);
}

// A worker process holding tensor shard 1 of the whole model (`banyan serve --node w1` of a
// two-node cluster config whose other node, "bench", is this process: it leads the stage and
// sums with the worker over a ring between their data planes).
struct ShardWorker {
  std::shared_ptr<actors::Bulk> bulk = std::make_shared<actors::Bulk>("127.0.0.1", "127.0.0.1", 0);
  actors::NodeAddress address;
  int data_port = 0;    // the worker's
  int leader_port = 0;  // where this process publishes its node: the worker heartbeats its leader
  std::unique_ptr<testkit::ChildProcess> process;

  ShardWorker(const std::filesystem::path& model, const std::filesystem::path& dir, const std::string& threads) {
    const auto ports = testkit::free_ports(3);
    address = {"w1", "127.0.0.1", ports[0]};
    data_port = ports[1];
    leader_port = ports[2];
    std::ofstream(dir / "cluster.yaml") << "model:\n  path: " << model.string()
                                        << "\n  tensor_parallelism_degree: 2\n  placement: [[bench, w1]]\nnodes:\n"
                                        << "  - {name: bench, host: 127.0.0.1, port: " << ports[2]
                                        << ", data_port: " << bulk->port() << "}\n"
                                        << "  - {name: w1, host: 127.0.0.1, port: " << ports[0] << ", data_port: " << ports[1]
                                        << "}\nhead: bench\n";
    process = std::make_unique<testkit::ChildProcess>(std::vector<std::string>{
        BANYAN_BINARY, "serve", "--node", "w1", "--config", (dir / "cluster.yaml").string(), "--threads", threads});
    process->wait_for_output(std::regex("ready on 127\\.0\\.0\\.1"), std::chrono::seconds(120));
  }
  ~ShardWorker() { process->stop(SIGTERM, std::chrono::seconds(30)); }
  // Shard 0 here, summing with the worker's shard 1.
  std::shared_ptr<PipelineStage> leader(const WeightSource& w, Backend& backend) {
    const transport::RingOptions ring{.rank = 0, .size = 2, .group = transport::kSpreadRingGroups};
    std::vector<std::shared_ptr<Collective>> collectives{std::make_shared<transport::RingAllReduce>(
        std::shared_ptr<transport::DataPlane>(bulk, &bulk->plane()), "127.0.0.1", data_port, ring)};
    return sharded_stage(0, 2, collectives, [&](TensorShard shard) {
      ModelOptions o;
      o.shard = shard;
      return std::make_shared<LlamaModel>(w, backend, o);
    });
  }
};

double all_reduce_seconds(const std::vector<std::shared_ptr<PipelineStage>>& stages) {
  double s = 0;
  for (const auto& stage : stages) s += stage->shard(0).collective_stats().seconds;
  return s;
}

}  // namespace

int parallel_benchmark(int argc, char** argv) {
  cli::Options o("bench parallel", "[options]",
                 "Tokens/s of the LLM whole (pp=1) against it split into 2 pipeline stages, in this process and with\n"
                 "the second stage in another process (over CAF on loopback), with the share of each step spent\n"
                 "passing activations. Random weights in the llama-160m shape (12 layers, hidden 768); the\n"
                 "outputs of the pipelines (greedy, or sampled with --temperature) are checked identical. Tensor parallelism: tp=2 (two shards in this process,\n"
                 "half the threads each, summing in shared memory or over a UCX ring), tp=2 with the second shard in\n"
                 "another process (a UCX ring between them) and pp=2 x tp=2.");
  o.add("--dtype", "TYPE", "weights: f32, f16, int8, int4", "int8");
  o.add("--batches", "LIST", "requests decoded at once", "1,8");
  o.add("--prompt-tokens", "N", "tokens per prompt", "128");
  o.add("--tokens", "N", "tokens decoded per request", "64");
  o.add("--threads", "N", "CPU threads (each process)", "2");
  o.add("--temperature", "T", "sampling temperature; 0 is greedy", "0");
  o.add("--top-p", "P", "nucleus sampling mass", "1");
  o.add("--top-k", "K", "sample among the K most likely tokens (0: all)", "0");
  o.add("--out", "FILE", "JSON result file", "bench-parallel.json");
  if (!o.parse(argc, argv)) return 0;
  const SamplingParams sampling{float(o.number("--temperature")), o.integer("--top-k"), float(o.number("--top-p")), 1};
  if (sampling.temperature < 0 || !(sampling.top_p > 0 && sampling.top_p <= 1) || sampling.top_k < 0)
    throw cli::UsageError("--temperature must be 0 or more, --top-p in (0, 1], --top-k 0 or more");

  const LlamaConfig shape = llama_160m_shape();
  const int half = shape.num_hidden_layers / 2, tokens = o.integer("--tokens");
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("banyan-parallel-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / "llama-160m.banyan";
  std::printf("writing %s (random llama-160m shape, %s) ...\n", file.c_str(), o.text("--dtype").c_str());
  std::fflush(stdout);
  write_converted(EncodedWeights(RandomWeights(shape, 1), {.linear = cli::format_option(o, "--dtype"), .kv_cache = DType::f32}), file);
  // `banyan stage` loads a tokenizer beside the model, though a stage never uses it.
  std::filesystem::copy_file(models_dir() / "demo-llm" / "tokenizer.model", dir / "tokenizer.model");

  const int threads = o.integer("--threads");
  auto weights = open_converted(file);
  caf::actor_system_config config;
  actors::configure_actor_system(config);
  config.load<caf::io::middleman>();
  caf::actor_system system(config);
  testkit::ChildProcess remote({BANYAN_BINARY, "stage", "--model", file.string(), "--layers",
                                std::to_string(half) + "-" + std::to_string(shape.num_hidden_layers - 1), "--threads",
                                o.text("--threads"), "--data-port", "0"});
  const int port = std::stoi(remote.wait_for_output(std::regex("on 127\\.0\\.0\\.1:(\\d+)"), std::chrono::seconds(120))[1]);
  ShardWorker worker(file, dir, std::to_string(std::max(1, threads / 2)));

  nlohmann::json rows = nlohmann::json::array();
  std::printf("\n%-28s %5s %14s %14s %11s %12s %10s\n", "layout", "batch", "prefill tok/s", "decode tok/s", "ms/step",
              "comm share", "agreement");
  for (const auto& batch_text : o.list("--batches")) {
    const int batch = std::stoi(batch_text);
    const auto prompts = random_prompts(batch, o.integer("--prompt-tokens"), shape.vocab_size, 7);
    std::vector<Row> results;
    // A CPU backend sets OpenBLAS (process-wide) to its thread count, and a prefill's sgemm sums
    // in another order with another count: the backends are made in the order the rows run, the
    // tensor shards' (half the threads each) last, so that every other row matches pp=1 exactly.
    std::vector<std::unique_ptr<Backend>> backend, halves;
    backend.push_back(cpu::make_cpu_backend({threads}));
    {
      LlamaModel whole(*weights, *backend.front());
      LocalLlm llm(whole);
      results.push_back(run(llm, prompts, tokens, sampling));
      results.back().layout = "pp=1";
    }
    {
      actors::Node node(system, "bench", {{.stages = {stage(*weights, backend, 0, half), stage(*weights, backend, half, shape.num_hidden_layers)}}});
      actors::StagedLlm llm(system, node.run_at(0), shape);
      results.push_back(run(llm, prompts, tokens, sampling));
      results.back().layout = "pp=2, one process";
    }
    for (const bool data_plane : {false, true}) {
      actors::RemoteStage next{{"", "127.0.0.1", port}, half};
      auto bulk = data_plane ? std::make_shared<actors::Bulk>("127.0.0.1", "127.0.0.1", 0) : nullptr;
      actors::Node node(system, "bench", {{.stages = {stage(*weights, backend, 0, half)}, .next = next}}, {}, bulk);
      node.wait_until_joined(std::chrono::seconds(60), [](const auto&) {});
      actors::StagedLlm llm(system, node.run_at(0), shape);
      results.push_back(run(llm, prompts, tokens, sampling));
      results.back().layout = data_plane ? "pp=2, two processes, UCX" : "pp=2, two processes, CAF";
    }
    for (int r = 0; r < 2; ++r) halves.push_back(cpu::make_cpu_backend({std::max(1, threads / 2)}));
    for (const Sum sum : {Sum::shared_memory, Sum::ucx_ring}) {
      auto sharded = stage(*weights, halves, 0, shape.num_hidden_layers, sum);
      StageLlm llm(sharded);
      results.push_back(run(llm, prompts, tokens, sampling));
      results.back().layout = sum == Sum::ucx_ring ? "tp=2, UCX ring" : "tp=2, shared memory";
      results.back().all_reduce_seconds = all_reduce_seconds({sharded});
    }
    {
      auto leader = worker.leader(*weights, *halves.front());
      actors::Node node(system, "bench", {{.stages = {leader}, .shard_nodes = {{worker.address}}}}, {}, worker.bulk);
      node.publish("127.0.0.1", worker.leader_port);
      node.wait_until_joined(std::chrono::seconds(60), [](const auto&) {});
      actors::StagedLlm llm(system, node.run_at(0), shape);
      results.push_back(run(llm, prompts, tokens, sampling));
      results.back().layout = "tp=2, two processes, UCX";
      results.back().all_reduce_seconds = all_reduce_seconds({leader});
    }
    {
      std::vector<std::shared_ptr<PipelineStage>> stages{stage(*weights, halves, 0, half),
                                                         stage(*weights, halves, half, shape.num_hidden_layers)};
      actors::Node node(system, "bench", {{.stages = stages}});
      actors::StagedLlm llm(system, node.run_at(0), shape);
      results.push_back(run(llm, prompts, tokens, sampling));
      results.back().layout = "pp=2 x tp=2, shared memory";
      results.back().all_reduce_seconds = all_reduce_seconds(stages);
    }
    const Row& base = results.front();
    for (const Row& r : results) {
      const bool sharded = r.all_reduce_seconds >= 0;
      // A pipeline computes pp=1's logits exactly: the same tokens, greedy or drawn with the same seeds.
      if (!sharded && r.outputs != base.outputs) throw Error(r.layout + ": outputs differ from pp=1");
      const double agree = agreement(r.outputs, base.outputs);
      const double share = r.all_reduce_seconds >= 0 ? r.all_reduce_seconds / r.seconds : 1.0 - base.ms_per_step / r.ms_per_step;
      std::printf("%-28s %5d %14.1f %14.1f %11.2f %11.1f%% %9.1f%%\n", r.layout.c_str(), r.batch, r.prefill_tokens_per_s,
                  r.decode_tokens_per_s, r.ms_per_step, 100.0 * std::max(0.0, share), 100.0 * agree);
      rows.push_back({{"layout", r.layout}, {"batch", r.batch}, {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                      {"decode_tokens_per_s", r.decode_tokens_per_s}, {"ms_per_step", r.ms_per_step},
                      {"communication_share", share}, {"decode_vs_pp1", r.decode_tokens_per_s / base.decode_tokens_per_s},
                      {"greedy_agreement_with_pp1", agree}});
    }
  }
  remote.stop(SIGTERM, std::chrono::seconds(30));
  std::filesystem::remove_all(dir);
  write_json(o.text("--out"), {{"benchmark", "parallel"}, {"machine", machine_description()}, {"model", "llama-160m shape, random"},
                               {"dtype", o.text("--dtype")}, {"tokens", tokens}, {"prompt_tokens", o.integer("--prompt-tokens")},
                               {"temperature", sampling.temperature}, {"top_p", sampling.top_p}, {"top_k", sampling.top_k},
                               {"rows", rows}});
  return 0;
}

}  // namespace banyan::bench
