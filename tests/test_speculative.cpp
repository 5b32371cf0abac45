// Speculative inference end to end: greedy output identical to incremental decoding across
// SSM sets, tree shapes and batch sizes; an SSM equal to the LLM gets every token accepted;
// speculative sampling keeps the LLM's distribution (chi-square against the exact one).
#define BOOST_TEST_MODULE test_speculative
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <map>
#include <random>

#include "cpu/cpu_backend.hpp"
#include "engine/engine.hpp"
#include "model/llama_model.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

struct Models {
  test::TempDir dir;
  std::unique_ptr<Backend> backend = cpu::make_cpu_backend({2});
  std::vector<std::unique_ptr<WeightSource>> sources;
  std::vector<std::unique_ptr<LlamaModel>> models;

  LlamaModel& load(const std::filesystem::path& path) {
    sources.push_back(open_weights(path));
    models.push_back(std::make_unique<LlamaModel>(*sources.back(), *backend));
    return *models.back();
  }
};

// The LLM's own weights plus noise: an SSM that agrees with it often but not always.
std::filesystem::path write_perturbed(const std::filesystem::path& from, const std::filesystem::path& dir, float noise) {
  auto src = open_weights(from);
  test::TensorMap tensors;
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (const auto& name : src->tensor_names()) {
    auto t = src->read(name);
    for (auto& v : t.data) v += noise * n(rng) * std::abs(v);
    tensors[name] = std::move(t);
  }
  std::filesystem::create_directories(dir);
  test::write_hf_config(dir / "config.json", src->config());
  test::write_safetensors(dir / "model.safetensors", tensors, DType::f32);
  return dir;
}

LlamaConfig small_config(int vocab, int dim, int layers) {
  LlamaConfig c;
  c.hidden_size = dim;
  c.intermediate_size = dim * 3;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.num_hidden_layers = layers;
  c.vocab_size = vocab;
  c.max_position_embeddings = 256;
  return c;
}

// The engine's KV cache: paged by default (room for every slot's whole sequence).
struct KvChoice {
  int tokens = 0;
  int block_rows = 16;  // 0: not paged
  bool prefix_caching = true;
};

struct RunResult {
  std::vector<std::vector<std::int32_t>> tokens;
  std::vector<std::vector<int>> accepted;  // per request, per LLM step
  std::vector<std::vector<int>> depth;     // per request, the depth of each step's tree
  std::vector<FinishReason> finish;
  int preemptions = 0;
  int cached_tokens = 0;
};

RunResult run(LlamaModel& llm, std::vector<LlamaModel*> ssms, const std::vector<std::vector<std::int32_t>>& prompts,
              const std::vector<GenerationConfig>& configs, int batch, TreeShape shape, KvChoice kv = {}) {
  EngineOptions o;
  o.limits.max_requests_per_batch = batch;
  o.limits.max_tokens_per_batch = 1024;
  o.limits.kv_cache_tokens = kv.tokens;
  o.limits.kv_block_rows = kv.block_rows;
  o.limits.kv_prefix_caching = kv.prefix_caching;
  o.tree = shape;
  o.adaptive_speculation = false;  // every step speculates: the acceptance checks below count on it
  Engine engine(llm, std::move(ssms), o);
  std::vector<RequestId> ids;
  for (std::size_t i = 0; i < prompts.size(); ++i) ids.push_back(engine.submit(prompts[i], configs[i]));
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  RunResult out;
  for (auto id : ids) {
    const Request& r = engine.requests().request(id);
    out.tokens.emplace_back(r.tokens.begin() + r.prompt_length, r.tokens.end());
    out.accepted.push_back(r.stats.accepted_per_step);
    out.depth.push_back(r.stats.tree_depth_per_step);
    out.finish.push_back(r.finish);
    out.preemptions += r.stats.preemptions;
    out.cached_tokens += r.stats.cached_prompt_tokens;
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(greedy_speculative_equals_incremental) {
  Models m;
  LlamaModel& llm = m.load(test::fixtures_dir() / "tiny-llama");
  LlamaModel& near = m.load(write_perturbed(test::fixtures_dir() / "tiny-llama", m.dir / "near", 0.1f));
  test::write_random_model(m.dir / "random", small_config(128, 16, 1), 77);
  LlamaModel& random = m.load(m.dir / "random");

  std::mt19937 rng(42);
  std::vector<std::vector<std::int32_t>> prompts;
  for (int i = 0; i < 50; ++i) {
    std::vector<std::int32_t> p = {1};
    for (int k = int(rng() % 12); k > 0; --k) p.push_back(3 + std::int32_t(rng() % 125));
    prompts.push_back(p);
  }
  const std::vector<GenerationConfig> configs(prompts.size(), GenerationConfig{40, {}});
  const auto expected = run(llm, {}, prompts, configs, 8, {}).tokens;

  struct SsmSet {
    const char* name;
    std::vector<LlamaModel*> ssms;
    bool contains_llm;
  };
  const std::vector<SsmSet> sets = {{"llm itself", {&llm}, true},
                                    {"different random model", {&random}, false},
                                    {"perturbed llm", {&near}, false},
                                    {"perturbed + random", {&near, &random}, false},
                                    {"llm itself + random", {&llm, &random}, true}};
  const std::vector<TreeShape> shapes = {{1, 1}, {1, 8}, {2, 4}, {3, 8}, {4, 8}};
  double near_mean = 0;
  int near_runs = 0;
  for (const auto& set : sets)
    for (const auto& shape : shapes)
      for (int batch : {1, 3, 8}) {
        BOOST_TEST_CONTEXT(set.name << ", tree " << shape.width << "x" << shape.depth << ", batch " << batch) {
          const auto got = run(llm, set.ssms, prompts, configs, batch, shape);
          for (std::size_t i = 0; i < prompts.size(); ++i)
            BOOST_TEST_REQUIRE(got.tokens[i] == expected[i], boost::test_tools::per_element());
          // With the LLM among the SSMs its greedy path is always in the tree: every step but a
          // request's last (cut short by EOS or max_new_tokens) accepts the whole depth plus one.
          const int n = int(set.ssms.size());
          const int full_depth = std::min(shape.depth, std::min(63, n * shape.width * shape.depth) / n);
          int deepest = 0;
          for (std::size_t i = 0; i < prompts.size(); ++i) {
            const auto& acc = got.accepted[i];
            for (std::size_t s = 0; s + 1 < acc.size(); ++s) {
              BOOST_TEST_REQUIRE(acc[s] >= 1);
              if (set.contains_llm) BOOST_TEST_REQUIRE(acc[s] == got.depth[i][s] + 1, "request " << i << " step " << s);
            }
            for (int d : got.depth[i]) deepest = std::max(deepest, d);
            if (std::string(set.name) == "perturbed llm" && acc.size() > 1) {
              for (int a : acc) near_mean += a;
              near_runs += int(acc.size());
            }
          }
          BOOST_TEST(deepest == full_depth);  // the trees really were as deep as the shape allows
        }
      }
  BOOST_TEST_MESSAGE("perturbed-LLM SSM: " << near_mean / near_runs << " tokens per LLM step");
  BOOST_TEST(near_mean / near_runs > 1.3);  // partial acceptance: the compaction paths are exercised
}

namespace {

using Outcome = std::vector<std::int32_t>;  // generated tokens, then -1 if EOS ended them

// The exact distribution of the first `length` tokens under the LLM's sampling distribution.
void exact_distribution(LlamaModel& llm, const std::vector<std::int32_t>& context, Outcome sofar, double prob,
                        const SamplingParams& params, int length, std::map<Outcome, double>& out) {
  auto kv = llm.create_kv_cache({1, 64});
  ForwardBatch b;
  for (std::size_t i = 0; i < context.size(); ++i) b.add_causal(context[i], 0, int(i), i + 1 == context.size());
  std::vector<float> logits, p;
  llm.forward(b, *kv, logits);
  sampling_distribution(logits, params, p);
  for (std::int32_t v = 0; v < std::int32_t(p.size()); ++v) {
    if (p[std::size_t(v)] <= 0) continue;
    Outcome next = sofar;
    next.push_back(v == llm.config().eos_token_id ? -1 : v);
    if (v == llm.config().eos_token_id || int(next.size()) == length) {
      out[next] += prob * p[std::size_t(v)];
    } else {
      auto ctx = context;
      ctx.push_back(v);
      exact_distribution(llm, ctx, next, prob * p[std::size_t(v)], params, length, out);
    }
  }
}

// Chi-square statistic and its p = 0.001 critical value (Wilson-Hilferty), bins of expected
// count under 5 pooled.
std::pair<double, double> chi_square(const std::map<Outcome, double>& exact, const std::map<Outcome, int>& seen, int n) {
  double chi2 = 0, pooled_expected = 0, pooled_seen = 0;
  int bins = 0;
  for (const auto& [outcome, p] : exact) {
    const double e = p * n;
    const auto it = seen.find(outcome);
    const double o = it == seen.end() ? 0 : it->second;
    if (e < 5) {
      pooled_expected += e;
      pooled_seen += o;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++bins;
  }
  if (pooled_expected > 0) {
    chi2 += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
    ++bins;
  }
  const double df = bins - 1, z = 3.090232;  // upper 0.1% of the standard normal
  const double critical = df * std::pow(1 - 2 / (9 * df) + z * std::sqrt(2 / (9 * df)), 3);
  return {chi2, critical};
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_paged_kv_cache_too_small_for_every_request_preempts_and_shares_prefixes_without_changing_the_output) {
  Models m;
  LlamaModel& llm = m.load(test::fixtures_dir() / "tiny-llama");
  LlamaModel& near = m.load(write_perturbed(test::fixtures_dir() / "tiny-llama", m.dir / "near", 0.1f));
  // Half the prompts begin with the same 34 tokens (a system prompt): with prefix caching they
  // share its two whole blocks.
  std::mt19937 rng(8);
  std::vector<std::int32_t> system = {1};
  for (int k = 0; k < 33; ++k) system.push_back(3 + std::int32_t(rng() % 125));
  std::vector<std::vector<std::int32_t>> prompts;
  for (int i = 0; i < 12; ++i) {
    std::vector<std::int32_t> p = i % 2 ? system : std::vector<std::int32_t>{1};
    for (int k = 1 + int(rng() % 30); k > 0; --k) p.push_back(3 + std::int32_t(rng() % 125));
    prompts.push_back(p);
  }
  std::vector<GenerationConfig> greedy(prompts.size(), GenerationConfig{60, {}}), sampled = greedy;
  for (std::size_t i = 0; i < sampled.size(); ++i) sampled[i].sampling = {0.9f, 20, 0.95f, 100 + i};
  // A sequence may reach 256 + 1 rows (the model's context; 265 with a 2x4 tree), so the cache
  // must hold 17 blocks of 16. It holds 18; these requests reach 125 rows (8 blocks): about two
  // or three of the eight fit at a time.
  const int tokens = 18 * 16;
  for (const auto* configs : {&greedy, &sampled}) {
    const auto expected = run(llm, {}, prompts, *configs, 8, {}, {0, 0}).tokens;  // not paged
    BOOST_TEST_CONTEXT((configs == &greedy ? "greedy" : "sampled")) {
      for (bool caching : {false, true}) {
        const auto paged = run(llm, {}, prompts, *configs, 8, {}, {tokens, 16, caching});
        BOOST_TEST(paged.preemptions > 0);
        BOOST_TEST(caching == (paged.cached_tokens > 0));
        for (std::size_t i = 0; i < prompts.size(); ++i)
          BOOST_TEST_REQUIRE(paged.tokens[i] == expected[i], boost::test_tools::per_element());
      }
      // Speculative decoding's greedy output is the same again, whatever the trees' blocks allow.
      if (configs == &greedy) {
        const auto speculative = run(llm, {&near}, prompts, *configs, 8, {2, 4}, {tokens});
        BOOST_TEST(speculative.preemptions > 0);
        BOOST_TEST(speculative.cached_tokens > 0);
        for (std::size_t i = 0; i < prompts.size(); ++i)
          BOOST_TEST_REQUIRE(speculative.tokens[i] == expected[i], boost::test_tools::per_element());
      }
    }
  }
}

namespace {
// A machine as the policy sees it: a step with trees of up to `size` tokens commits 1, 1.8,
// 2.4 or 3 tokens (size 0, 1, 2, 4) and takes 1 + cost * size seconds.
double committed_with(int size) { return size == 0 ? 1.0 : size == 1 ? 1.8 : size == 2 ? 2.4 : 3.0; }
}  // namespace

BOOST_AUTO_TEST_CASE(the_speculation_policy_picks_the_fastest_tree_size_per_batch_size) {
  SpeculationPolicy p(4);  // sizes 0 (incremental), 1, 2, 4
  // One step at `decoding` requests where a tree token costs `cost`; returns the size used.
  auto step = [&](int decoding, double cost) {
    const int size = p.tree_tokens(decoding);
    p.record(decoding, size, (long long)(committed_with(size) * 1000), 1 + cost * size);
    return size;
  };
  auto steps_at = [&](int steps, int decoding, double cost, int size) {
    int n = 0;
    for (int i = 0; i < steps; ++i) n += step(decoding, cost) == size;
    return n;
  };
  // Batch 1, trees cheap (per second: 1, 1.71, 2.18, 2.5 tokens): the whole tree, after the
  // warm-up's incremental steps and a try of the next smaller size, tried again after 64 and
  // 128 steps.
  BOOST_TEST(steps_at(256, 1, 0.05, 4) >= 256 - 4 * 4);
  // Batch 8 (or 9, the same bucket), trees dearer (1, 1.29, 1.33, 1.15): size 2, found from the
  // whole tree (faster than none) by trying smaller trees while they gain, and kept after
  // trying size 4 and size 1 again.
  int at_2 = 0;
  for (int i = 0; i < 256; ++i) at_2 += step(8 + i % 2, 0.4) == 2;
  BOOST_TEST(at_2 >= 256 - 24);
  // Batch 32, trees dear (1, 0.6, 0.48, 0.33): it starts at batch 8's choice (no warm-up of its
  // own, which would run the full tree), its first try finds size 1 faster, the next
  // incremental decoding, which it keeps.
  BOOST_TEST(steps_at(64, 32, 2.0, 2) == 64);
  steps_at(32, 32, 2.0, 0);
  BOOST_TEST(steps_at(256, 32, 2.0, 0) >= 256 - 8);
  // Batch 1 kept its own measurements.
  BOOST_TEST(steps_at(40, 1, 0.05, 4) >= 36);
  // While the tries keep confirming the choice they come less and less often: 4096 more steps
  // at batch 8 try another size 5 times (the intervals doubling up to 1024 steps), where a try
  // every 64 steps would have been 64 tries.
  const int others = 4096 - steps_at(4096, 8, 0.4, 2);
  BOOST_TEST(others >= 4 * 4);
  BOOST_TEST(others <= 7 * 4);
  // A try that finds another size faster moves there, within the longest interval or two.
  steps_at(2200, 8, 0.05, 4);
  BOOST_TEST(steps_at(600, 8, 0.05, 4) >= 600 - 3 * 4);
}

BOOST_AUTO_TEST_CASE(one_step_the_machine_holds_up_does_not_decide_the_size) {
  // The whole tree is the fastest (3 tokens in 2 ms; size 2: 2.4 in 2 ms, incremental 1 in
  // 1 ms), and one of its steps takes 100 ms (seen on 2 shared cores: the bench's offloaded demo
  // pair fell from 2.1x to 1.2x after such a step, decoding incrementally for hundreds of steps).
  SpeculationPolicy p(4);
  int others = 0;
  for (int i = 0; i < 200; ++i) {
    const int size = p.tree_tokens(1);
    others += size != 4;
    p.record(1, size, (long long)(committed_with(size) * 1000), size == 0 ? 0.001 : i == 20 ? 0.1 : 0.002);
  }
  // The warm-up's incremental steps and try of size 2, and one try 64 steps later: no more.
  BOOST_TEST(others <= 3 * 4);
}

BOOST_AUTO_TEST_CASE(adaptive_speculation_switches_modes_without_changing_the_output) {
  Models m;
  LlamaModel& llm = m.load(test::fixtures_dir() / "tiny-llama");
  LlamaModel& near = m.load(write_perturbed(test::fixtures_dir() / "tiny-llama", m.dir / "near", 0.1f));
  std::mt19937 rng(7);
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<GenerationConfig> configs;
  for (int i = 0; i < 8; ++i) {
    std::vector<std::int32_t> p = {1};
    for (int k = int(rng() % 8); k > 0; --k) p.push_back(3 + std::int32_t(rng() % 125));
    prompts.push_back(p);
    configs.push_back(GenerationConfig{10 + 6 * i, {}});  // requests end one by one: the batch shrinks
  }
  auto generate = [&](bool with_ssm, bool preload) {
    EngineOptions o;
    o.limits.max_requests_per_batch = 8;
    Engine engine(llm, with_ssm ? std::vector<LlamaModel*>{&near} : std::vector<LlamaModel*>{}, o);
    // Incremental steps "measured" far faster at 4-7 decoding requests, so the policy switches:
    // the batch starts at 8 (the whole tree, then smaller ones tried), shrinks through 4-7 (the
    // whole tree, until its first try ends and its preloaded incremental rate wins).
    if (preload)
      for (int i = 0; i < 4; ++i) engine.speculation_policy().record(5, 0, 1'000'000'000, 1.0);
    std::vector<RequestId> ids;
    for (std::size_t i = 0; i < prompts.size(); ++i) ids.push_back(engine.submit(prompts[i], configs[i]));
    engine.run([](RequestId, std::span<const std::int32_t>) {});
    std::vector<std::vector<std::int32_t>> out;
    for (auto id : ids) out.push_back(engine.requests().request(id).tokens);
    return std::pair{out, engine.stats()};
  };
  const auto [expected, plain] = generate(false, false);
  const auto [got, stats] = generate(true, true);
  BOOST_TEST((got == expected));
  BOOST_TEST(stats.speculative_steps > 0);
  BOOST_TEST(stats.speculative_steps < stats.steps);
}

BOOST_AUTO_TEST_CASE(an_ssm_equal_to_the_llm_stays_in_step_across_mode_switches_and_reused_slots) {
  Models m;
  LlamaModel& llm = m.load(test::fixtures_dir() / "tiny-llama");
  EngineOptions o;
  o.limits.max_requests_per_batch = 1;  // every request in slot 0, one after another
  o.tree = {1, 4};
  Engine engine(llm, {&llm}, o);
  // Incremental steps "measured" far faster after every step: past the warm-up (the whole tree,
  // then incremental decoding), requests decode one token a step and speculate only in the
  // policy's tries of a 1-token tree (at once, then 64 and 128 steps later), so slots are
  // reused while the SSM owes commits and has skipped many steps. The SSM is the LLM: whenever
  // it drafts, every drafted token must be accepted.
  std::mt19937 rng(3);
  std::vector<RequestId> ids;
  for (int i = 0; i < 16; ++i) {
    std::vector<std::int32_t> p = {1};
    for (int k = 1 + int(rng() % 6); k > 0; --k) p.push_back(3 + std::int32_t(rng() % 125));
    ids.push_back(engine.submit(p, GenerationConfig{24, {}}));
  }
  while (engine.step([](RequestId, std::span<const std::int32_t>) {}))
    engine.speculation_policy().record(1, 0, 1'000'000'000, 1.0);
  int later_trees = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const Request& r = engine.requests().request(ids[i]);
    const auto& accepted = r.stats.accepted_per_step;
    const auto& depth = r.stats.tree_depth_per_step;
    for (std::size_t s = 0; s + 1 < accepted.size(); ++s) {  // the last step may be cut short
      BOOST_TEST_REQUIRE(accepted[s] == depth[s] + 1, "request " << i << ", step " << s);
      if (i > 0 && depth[s] > 0) ++later_trees;
    }
  }
  BOOST_TEST(later_trees > 0);
  BOOST_TEST(engine.stats().speculative_steps < engine.stats().steps);
}

BOOST_AUTO_TEST_CASE(nucleus_sampling_from_summaries_draws_what_whole_rows_draw) {
  // top_k 0 with top_p < 1: the LLM's rows come back as summaries of their best 64 tokens with
  // their weight at the temperature, and whole only where the nucleus reaches beyond those. A
  // top_k of the whole vocabulary is the same distribution, read from whole rows. Same seeds,
  // same tokens, incremental and speculative, at T 0.3 (nuclei within the summary) and T 1.5
  // (beyond it).
  Models m;
  test::write_random_model(m.dir / "llm", small_config(300, 32, 2), 41);
  LlamaModel& llm = m.load(m.dir / "llm");
  LlamaModel& ssm = m.load(write_perturbed(m.dir / "llm", m.dir / "ssm", 0.05f));
  {  // Both paths are taken: a prompt's row at each temperature.
    ForwardBatch b;
    for (int p = 0; p < 4; ++p) b.add_causal(1 + 7 * p, 0, p, p == 3);
    b.add_causal(9, 1, 0, true);
    b.summary_k = kMaxSummaryTokens;
    b.nucleus_temperature = {0.3f, 1.5f};
    b.nucleus_top_p = {0.9f, 0.9f};
    auto kv = llm.create_kv_cache({2, 16});
    std::vector<float> out;
    llm.forward(b, *kv, out);
    const std::size_t width = std::size_t(summary_width(kMaxSummaryTokens));
    BOOST_TEST(!nucleus_beyond_summary(std::span(out).first(width), kMaxSummaryTokens, 0.3f, 0.9f));
    BOOST_TEST(nucleus_beyond_summary(std::span(out).subspan(width, width), kMaxSummaryTokens, 1.5f, 0.9f));
    BOOST_TEST(out.size() == 2 * width + 300);  // the second row, whole
  }
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<GenerationConfig> summarised, whole;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back({1, 5 + i, 17, 3 * i + 2});
    const float t = i % 2 ? 1.5f : 0.3f;
    summarised.push_back({24, {t, 0, 0.9f, std::uint64_t(i + 1)}});
    whole.push_back({24, {t, 300, 0.9f, std::uint64_t(i + 1)}});
  }
  for (const bool speculative : {false, true}) {
    const std::vector<LlamaModel*> ssms = speculative ? std::vector<LlamaModel*>{&ssm} : std::vector<LlamaModel*>{};
    const auto a = run(llm, ssms, prompts, summarised, 4, {2, 3}), b = run(llm, ssms, prompts, whole, 4, {2, 3});
    for (std::size_t i = 0; i < prompts.size(); ++i)
      BOOST_TEST(a.tokens[i] == b.tokens[i], (speculative ? "speculative" : "incremental") << ", request " << i);
  }
}

BOOST_AUTO_TEST_CASE(speculative_sampling_keeps_the_llm_distribution) {
  Models m;
  test::write_random_model(m.dir / "llm", small_config(6, 16, 2), 101);
  test::write_random_model(m.dir / "ssm-a", small_config(6, 16, 1), 202);
  test::write_random_model(m.dir / "ssm-b", small_config(6, 16, 1), 303);
  LlamaModel& llm = m.load(m.dir / "llm");
  LlamaModel& a = m.load(m.dir / "ssm-a");
  LlamaModel& b = m.load(m.dir / "ssm-b");
  const std::vector<std::int32_t> prompt = {1, 4, 3, 5};
  const int runs = 20000, length = 3;

  // Plain, top-k with top-p, and a nucleus of the whole vocabulary (read from summaries).
  for (const SamplingParams params : {SamplingParams{1.0f, 0, 1.0f, 0}, SamplingParams{0.7f, 4, 0.9f, 0},
                                      SamplingParams{0.9f, 0, 0.8f, 0}}) {
    std::map<Outcome, double> exact;
    exact_distribution(llm, prompt, {}, 1.0, params, length, exact);
    // Room for whole trees after the first token; only the first `length` tokens are counted.
    std::vector<GenerationConfig> configs(runs, {length + 8, params});
    for (int i = 0; i < runs; ++i) configs[std::size_t(i)].sampling.seed = std::uint64_t(i) + 1;
    const std::vector<std::vector<std::int32_t>> prompts(runs, prompt);

    for (const bool speculative : {true, false}) {
      const auto got = speculative ? run(llm, {&a, &b}, prompts, configs, 64, {2, 3})
                                   : run(llm, {}, prompts, configs, 64, {});
      std::map<Outcome, int> seen;
      int multi_token_steps = 0;
      for (int i = 0; i < runs; ++i) {
        Outcome o = got.tokens[std::size_t(i)];
        if (int(o.size()) >= length) o.resize(std::size_t(length));
        else if (got.finish[std::size_t(i)] == FinishReason::stop) o.push_back(-1);
        ++seen[o];
        for (int acc : got.accepted[std::size_t(i)]) multi_token_steps += acc > 1;
      }
      const auto [chi2, critical] = chi_square(exact, seen, runs);
      BOOST_TEST_MESSAGE((speculative ? "speculative" : "incremental") << " T=" << params.temperature << " top_k="
                         << params.top_k << " top_p=" << params.top_p << ": chi2 " << chi2 << " (critical " << critical
                         << "), " << exact.size() << " outcomes");
      BOOST_TEST(chi2 < critical, (speculative ? "speculative" : "incremental") << " sampling: chi2 " << chi2);
      if (speculative) BOOST_TEST(multi_token_steps > runs / 10, "speculation accepted drafts in " << multi_token_steps << " steps");
    }
  }
}
