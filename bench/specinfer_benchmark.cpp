// bench specinfer: speculative against incremental decoding of the same LLM on the same prompts,
// at batch 1 and batch 8: tokens/s, accepted tokens per LLM step, the SSM's share of the time,
// and the speedup. Greedy outputs of the two modes are checked to be identical.
#include <cstdio>
#include <filesystem>

#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "bench/demo_pair.hpp"
#include "cli/option_types.hpp"
#include "engine/device_backend.hpp"
#include "engine/engine.hpp"
#include "model/error.hpp"
#include "model/random_weights.hpp"

namespace banyan::bench {

namespace {

struct Pair {
  std::string name;
  std::unique_ptr<WeightSource> llm_source, ssm_source;
  ModelOptions llm_options, ssm_options;
  std::vector<std::vector<std::int32_t>> prompts;
};

struct RunStats {
  double seconds = 0, tokens_per_s = 0, accepted_per_step = 0, ssm_share = 0, speculative_step_share = 0;
  long long tokens = 0;
  int llm_steps = 0;
  std::vector<std::vector<std::int32_t>> outputs;
};

// `sampling`: every request's, each with its own seed (sampling.seed + its index).
RunStats run(LlamaModel& llm, LlamaModel* ssm, const Pair& pair, int batch, int max_new, TreeShape tree,
             const SamplingParams& sampling, int kv_block_rows, bool adaptive = true) {
  EngineOptions o;
  o.limits.max_requests_per_batch = batch;
  o.limits.kv_block_rows = kv_block_rows;
  o.tree = tree;
  o.adaptive_speculation = adaptive;
  Engine engine(llm, ssm ? std::vector<LlamaModel*>{ssm} : std::vector<LlamaModel*>{}, o);
  std::vector<RequestId> ids;
  // Each batch slot serves its own copy of the prompts, so every run has `batch` times the work.
  for (int copy = 0; copy < batch; ++copy)
    for (const auto& p : pair.prompts) {
      GenerationConfig g{max_new, sampling};
      g.sampling.seed += ids.size();
      ids.push_back(engine.submit(p, g));
    }
  Stopwatch clock;
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  RunStats s;
  s.seconds = clock.seconds();
  long long step_tokens = 0;
  for (auto id : ids) {
    const Request& r = engine.requests().request(id);
    if (r.state == RequestState::failed) throw Error("request failed: " + r.error);
    s.outputs.emplace_back(r.tokens.begin() + r.prompt_length, r.tokens.end());
    s.tokens += r.generated();
    s.llm_steps += r.stats.llm_steps;
    for (int a : r.stats.accepted_per_step) step_tokens += a;
  }
  s.tokens_per_s = double(s.tokens) / s.seconds;
  s.accepted_per_step = s.llm_steps ? double(step_tokens) / s.llm_steps : 0;
  const auto& st = engine.stats();
  s.ssm_share = st.ssm_seconds / std::max(1e-9, st.ssm_seconds + st.llm_seconds);
  s.speculative_step_share = double(st.speculative_steps) / std::max(1, st.steps);
  return s;
}

// Requests whose tokens differ between the two runs.
int requests_differing(const RunStats& a, const RunStats& b) {
  int n = 0;
  for (std::size_t i = 0; i < a.outputs.size(); ++i) n += a.outputs[i] != b.outputs.at(i);
  return n;
}

}  // namespace

int specinfer_benchmark(int argc, char** argv) {
  cli::Options o("bench specinfer", "[options]",
                 "Speculative vs incremental decoding of the same LLM, same prompts, greedy (or sampled with\n"
                 "--temperature): tokens/s, accepted tokens per LLM step and the speedup, at each batch size.\n"
                 "Pairs: 'demo' (models/demo-llm + models/demo-ssm), 'demo-160m' (the demo LLM widened to llama-160m\n"
                 "size: hidden 768, intermediate 3072, 12 layers, the added parts computing zeros, so it is memory-bound\n"
                 "and still decodes what the demo LLM decodes; with the demo SSM), 'random-160m' (a random\n"
                 "llama-160m-shape LLM with its own int4 copy as SSM), 'random-1.1b' (a random TinyLlama-1.1B-shape LLM,\n"
                 "memory-bound, with its own int8 copy; not run by default: 5.5 GB and minutes), or --llm/--ssm for any\n"
                 "two model folders.");
  o.add("--pairs", "LIST", "built-in pairs to run", "demo,demo-160m,random-160m");
  o.add("--llm", "PATH", "an LLM folder or file (with --ssm: replaces --pairs)");
  o.add("--ssm", "PATH", "its SSM");
  o.add("--dtype", "FORMAT", "LLM weight format", "f32");
  o.add("--ssm-dtype", "FORMAT", "SSM weight format (default: f32; int4 for the random-160m pair's copy, int8 for random-1.1b's)");
  o.add("--batches", "LIST", "batch sizes", "1,8");
  o.add("--max-new-tokens", "N", "tokens per request", "128");
  o.add("--tree-width", "W", "beams per step", std::to_string(TreeShape{}.width));
  o.add("--tree-depth", "D", "speculated tokens per beam", std::to_string(TreeShape{}.depth));
  o.add("--temperature", "T", "sampling temperature; 0 is greedy (speculative output then checked equal)", "0");
  o.add("--top-p", "P", "nucleus sampling mass", "1");
  o.add("--top-k", "K", "sample among the K most likely tokens (0: all)", "0");
  o.add("--seed", "N", "first request's seed (each request its own)", "1");
  o.add("--threads", "N", "CPU threads", "2");
  o.add("--kv-block-rows", "N", "tokens per block of the paged KV cache (0: not paged)", "16");
  o.add("--device", "cpu|cuda", "the backend the models run on", "cpu");
  o.add("--out", "FILE", "JSON result file", "bench-specinfer.json");
  if (!o.parse(argc, argv)) return 0;

  auto format = [&](const std::string& opt) { return cli::format_option(o, opt); };
  const ModelOptions llm_options{format("--dtype"), DType::f32};
  auto ssm_options = [&](WeightFormat fallback) {
    return ModelOptions{o.has("--ssm-dtype") ? format("--ssm-dtype") : fallback, DType::f32};
  };
  std::vector<Pair> pairs;
  if (o.has("--llm") || o.has("--ssm")) {
    if (!o.has("--llm") || !o.has("--ssm")) throw cli::UsageError("--llm and --ssm go together");
    Pair p{o.text("--llm") + " + " + o.text("--ssm"), open_weights(o.text("--llm")), open_weights(o.text("--ssm")),
           llm_options, ssm_options(WeightFormat::f32), {}};
    const std::filesystem::path llm_path = o.text("--llm");
    p.prompts = std::filesystem::exists(llm_path / "tokenizer.model")
                    ? story_prompts(llm_path, p.llm_source->config())
                    : random_prompts(8, 16, p.llm_source->config().vocab_size, 11);
    pairs.push_back(std::move(p));
  } else {
    for (const auto& name : o.list("--pairs")) {
      if (is_demo_pair(name)) {
        auto demo = open_demo_pair(name);
        if (!demo) {
          std::printf("skipping pair '%s': %s is missing demo-llm or demo-ssm\n", name.c_str(), models_dir().c_str());
          continue;
        }
        pairs.push_back({name, std::move(demo->llm), std::move(demo->ssm), llm_options, ssm_options(WeightFormat::f32),
                         std::move(demo->prompts)});
      } else if (name == "random-160m") {
        const ModelOptions copy = ssm_options(WeightFormat::q4);
        Pair p{"random-160m + " + std::string(format_name(copy.linear)) + " copy", std::make_unique<RandomWeights>(llama_160m_shape(), 1),
               std::make_unique<RandomWeights>(llama_160m_shape(), 1), llm_options, copy, {}};
        p.prompts = random_prompts(8, 16, llama_160m_shape().vocab_size, 11);
        pairs.push_back(std::move(p));
      } else if (name == "random-1.1b") {
        // Memory-bound: 4.4 GB of f32 weights stream through the cores for every LLM pass, so
        // verifying a few tokens costs about what one costs; the int8 copy reads a quarter of that.
        const ModelOptions copy = ssm_options(WeightFormat::q8);
        Pair p{"random-1.1b + " + std::string(format_name(copy.linear)) + " copy",
               std::make_unique<RandomWeights>(tinyllama_1b_shape(), 1), std::make_unique<RandomWeights>(tinyllama_1b_shape(), 1),
               llm_options, copy, {}};
        p.prompts = random_prompts(2, 16, tinyllama_1b_shape().vocab_size, 11);
        pairs.push_back(std::move(p));
      } else {
        throw cli::UsageError("unknown pair '" + name + "' (demo, demo-160m, random-160m, random-1.1b)");
      }
    }
  }

  const TreeShape tree{o.integer("--tree-width"), o.integer("--tree-depth")};
  const SamplingParams sampling{float(o.number("--temperature")), o.integer("--top-k"), float(o.number("--top-p")),
                                std::uint64_t(o.integer("--seed"))};
  if (sampling.temperature < 0 || !(sampling.top_p > 0 && sampling.top_p <= 1) || sampling.top_k < 0)
    throw cli::UsageError("--temperature must be 0 or more, --top-p in (0, 1], --top-k 0 or more");
  const int max_new = o.integer("--max-new-tokens"), kv_block_rows = o.integer("--kv-block-rows");
  auto backend = make_backend(cli::device_option(o), o.integer("--threads"));
  std::printf("backend: %s\n", backend->name().c_str());
  nlohmann::json rows = nlohmann::json::array();
  // "every step" speculates in every step; the engine's default speculates in the steps where
  // that measured faster (SpeculationPolicy): "spec. steps" is their share.
  std::printf("%-26s %5s | %11s | %11s %8s %8s %7s | %11s %11s | %7s %7s\n", "pair", "batch", "incremental",
              "every step", "tok/step", "SSM time", "speedup", "default t/s", "spec. steps", "speedup", "best");
  for (const auto& pair : pairs) {
    LlamaModel llm(*pair.llm_source, *backend, pair.llm_options);
    LlamaModel ssm(*pair.ssm_source, *backend, pair.ssm_options);
    for (const auto& b : o.list("--batches")) {
      const int batch = std::stoi(b);
      const RunStats inc = run(llm, nullptr, pair, batch, max_new, tree, sampling, kv_block_rows);
      const RunStats spec = run(llm, &ssm, pair, batch, max_new, tree, sampling, kv_block_rows, false);
      const RunStats adaptive = run(llm, &ssm, pair, batch, max_new, tree, sampling, kv_block_rows);
      // Greedy speculative output is the incremental one for float weights. Compressed weights
      // multiply int8-rounded activations, and the float kernels (attention, the f16 classifier)
      // round several tokens a little differently from one (~1e-6): now and then that moves an
      // activation across a rounding step, and a near-tie of the top two logits (~1e-2) goes
      // the other way. Those are counted, not failed. Sampled outputs differ by design (the modes
      // draw differently; test_speculative checks that the distribution is the LLM's).
      const int differing = sampling.greedy() ? requests_differing(inc, spec) + requests_differing(inc, adaptive) : 0;
      const bool compressed = pair.llm_options.linear == WeightFormat::q8 || pair.llm_options.linear == WeightFormat::q4;
      if (differing > 0 && !compressed) throw Error(pair.name + ": speculative output differs from incremental");
      const double speedup = spec.tokens_per_s / inc.tokens_per_s, adaptive_speedup = adaptive.tokens_per_s / inc.tokens_per_s;
      // The default against the better of its two modes run alone: what choosing by measurement costs.
      const double of_best = adaptive.tokens_per_s / std::max(inc.tokens_per_s, spec.tokens_per_s);
      std::printf("%-26s %5d | %11.1f | %11.1f %8.2f %7.0f%% %6.2fx | %11.1f %10.0f%% | %6.2fx %6.0f%%\n", pair.name.c_str(),
                  batch, inc.tokens_per_s, spec.tokens_per_s, spec.accepted_per_step, 100 * spec.ssm_share, speedup,
                  adaptive.tokens_per_s, 100 * adaptive.speculative_step_share, adaptive_speedup, 100 * of_best);
      std::fflush(stdout);
      rows.push_back({{"pair", pair.name},
                      {"batch", batch},
                      {"llm_dtype", format_name(pair.llm_options.linear)},
                      {"ssm_dtype", format_name(pair.ssm_options.linear)},
                      {"tree", {tree.width, tree.depth}},
                      {"temperature", sampling.temperature},
                      {"top_p", sampling.top_p},
                      {"top_k", sampling.top_k},
                      {"tokens", spec.tokens},
                      {"incremental_tokens_per_s", inc.tokens_per_s},
                      {"speculative_tokens_per_s", spec.tokens_per_s},
                      {"accepted_tokens_per_step", spec.accepted_per_step},
                      {"llm_steps", spec.llm_steps},
                      {"ssm_time_share", spec.ssm_share},
                      {"speedup", speedup},
                      {"default_tokens_per_s", adaptive.tokens_per_s},
                      {"default_speculative_step_share", adaptive.speculative_step_share},
                      {"default_speedup", adaptive_speedup},
                      {"default_of_best_mode", of_best},
                      {"requests_differing_from_incremental", differing}});
      if (differing > 0)
        std::printf("  %d of %zu speculative requests (every step and default) diverge from incremental at a near-tie\n",
                    differing, 2 * inc.outputs.size());
    }
  }
  write_json(o.text("--out"), {{"machine", machine_description()},
                               {"backend", backend->name()},
                               {"threads", o.integer("--threads")},
                               {"kv_block_rows", kv_block_rows},
                               {"rows", rows}});
  return 0;
}

}  // namespace banyan::bench
