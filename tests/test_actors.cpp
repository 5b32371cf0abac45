// The actor runtime on one node: request actors stream exactly the tokens the engine commits,
// a cancel ends its request, a prompt that can never run fails alone, and a client that goes
// away frees its request's slot.
#define BOOST_TEST_MODULE test_actors
#include <boost/test/unit_test.hpp>
#include <caf/all.hpp>

#include "actors/llm_stage.hpp"
#include "actors/memory.hpp"
#include "actors/request.hpp"
#include "actors/scheduler.hpp"
#include "actors/ssm.hpp"
#include "cpu/cpu_backend.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/random_weights.hpp"
#include "support/test_support.hpp"

using namespace banyan;
using namespace banyan::actors;

namespace {

// Small and fast, with a long context: a request left alone runs for thousands of steps.
LlamaConfig test_config() {
  LlamaConfig c = test::tiny_llama_config();
  c.max_position_embeddings = 4096;
  return c;
}

// Layers `r` of the model, as one stage (not split into tensor shards).
std::shared_ptr<PipelineStage> whole_stage(const WeightSource& weights, Backend& backend, LayerRange r) {
  return std::make_shared<PipelineStage>(std::vector<std::shared_ptr<LlamaModel>>{
      std::make_shared<LlamaModel>(weights, backend, ModelOptions{}, LlamaModel::Progress{}, r)});
}

std::vector<std::vector<std::int32_t>> test_prompts() {
  return {{1, 5, 9, 33}, {1, 70, 2 + 1, 4, 4, 100, 17}, {1, 12}, {1, 90, 91, 92, 93, 94, 95, 96, 97}};
}

// A model, its engine, and an actor system whose scheduler serves that engine.
struct Node {
  std::unique_ptr<Backend> backend = cpu::make_cpu_backend({2});
  RandomWeights weights{test_config(), 7};
  LlamaModel llm{weights, *backend};
  Engine engine;
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;  // destroyed first: it waits for the actors
  scheduler_actor scheduler;

  Node(EngineOptions options, bool speculative = false)
      : engine(llm, speculative ? std::vector<LlamaModel*>{&llm} : std::vector<LlamaModel*>{}, options) {
    configure_actor_system(config);
    system = std::make_unique<caf::actor_system>(config);
    scheduler = spawn_scheduler(*system, engine);
  }
  ~Node() { stop(); }
  // Ends the actors; the engine may be read afterwards.
  void stop() {
    if (!system) return;
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    scheduler = nullptr;  // a handle kept would keep the scheduler, and the system, waiting
    system.reset();
  }
};

struct Stream {
  std::vector<std::int32_t> tokens;
  RequestDone done;
};

// Receives one request's tokens and its end at `client`.
Stream receive_stream(caf::scoped_actor& client) {
  Stream s;
  bool ended = false;
  while (!ended)
    client->receive([&](TokenChunk& c) { s.tokens.insert(s.tokens.end(), c.tokens.begin(), c.tokens.end()); },
                    [&](RequestDone& d) {
                      s.done = std::move(d);
                      ended = true;
                    },
                    caf::after(std::chrono::seconds(60)) >> [&] { BOOST_FAIL("no message for 60 s"); });
  return s;
}

GenerateRequest greedy(std::vector<std::int32_t> prompt, int max_new_tokens) {
  GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = max_new_tokens;
  return r;
}

// The tokens `engine` generates for the test prompts.
std::vector<std::vector<std::int32_t>> generate_all(Engine& engine, const GenerationConfig& config) {
  std::vector<RequestId> ids;
  for (const auto& p : test_prompts()) ids.push_back(engine.submit(p, config));
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  std::vector<std::vector<std::int32_t>> out;
  for (auto id : ids) {
    const Request& r = engine.requests().request(id);
    out.emplace_back(r.tokens.begin() + r.prompt_length, r.tokens.end());
  }
  return out;
}

// What the engine alone commits for these prompts.
std::vector<std::vector<std::int32_t>> engine_outputs(int max_new_tokens) {
  auto backend = cpu::make_cpu_backend({2});
  RandomWeights weights(test_config(), 7);
  LlamaModel llm(weights, *backend);
  Engine engine(llm, {}, {});
  return generate_all(engine, {max_new_tokens, {}});
}

}  // namespace

BOOST_AUTO_TEST_CASE(concurrent_requests_stream_the_engines_tokens) {
  const auto want = engine_outputs(24);
  for (bool speculative : {false, true}) {
    Node node({}, speculative);
    std::vector<std::unique_ptr<caf::scoped_actor>> clients;
    for (const auto& p : test_prompts()) {
      clients.push_back(std::make_unique<caf::scoped_actor>(*node.system));
      spawn_request(*node.system, node.scheduler, greedy(p, 24), caf::actor{*clients.back()});
    }
    for (std::size_t i = 0; i < clients.size(); ++i) {
      const Stream s = receive_stream(*clients[i]);
      BOOST_TEST_CONTEXT("speculative " << speculative << ", prompt " << i) {
        BOOST_TEST(s.tokens == want[i], boost::test_tools::per_element());
        BOOST_TEST(s.done.finish_reason == "length");
        BOOST_TEST(s.done.generated_tokens == 24);
        BOOST_TEST(s.done.prompt_tokens == int(test_prompts()[i].size()));
        // The SSM is the LLM itself: every speculated token is accepted.
        if (speculative) BOOST_TEST(s.done.accepted_per_step > 1.5);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_cancel_ends_its_request_and_the_others_go_on) {
  Node node({});
  caf::scoped_actor long_client{*node.system}, other_client{*node.system};
  // Runs until the context (4096 positions) is full unless cancelled.
  auto long_request = spawn_request(*node.system, node.scheduler, greedy({1, 3}, 100000), long_client);
  spawn_request(*node.system, node.scheduler, greedy(test_prompts()[0], 24), other_client);
  long_client->receive([](TokenChunk&) {}, caf::after(std::chrono::seconds(60)) >> [] { BOOST_FAIL("no tokens"); });
  long_client->send(long_request, cancel_atom::value);
  const Stream cancelled = receive_stream(long_client);
  BOOST_TEST(cancelled.done.finish_reason == "cancelled");
  BOOST_TEST(cancelled.done.generated_tokens < 2000);
  const Stream other = receive_stream(other_client);
  BOOST_TEST(other.done.finish_reason == "length");
  BOOST_TEST(other.tokens == engine_outputs(24)[0], boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_prompt_that_cannot_run_fails_alone) {
  Node node({});
  caf::scoped_actor bad_client{*node.system}, good_client{*node.system};
  spawn_request(*node.system, node.scheduler, greedy(std::vector<std::int32_t>(5000, 5), 8), bad_client);
  spawn_request(*node.system, node.scheduler, greedy(test_prompts()[0], 24), good_client);
  const Stream bad = receive_stream(bad_client);
  BOOST_TEST(bad.done.finish_reason == "error");
  BOOST_TEST(bad.done.error.find("4096") != std::string::npos, "the reason names the limit: " << bad.done.error);
  BOOST_TEST(bad.tokens.empty());
  const Stream good = receive_stream(good_client);
  BOOST_TEST(good.tokens == engine_outputs(24)[0], boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_client_that_goes_away_frees_its_slot) {
  EngineOptions one_at_a_time;
  one_at_a_time.limits.max_requests_per_batch = 1;
  Node node(one_at_a_time);
  {
    caf::scoped_actor gone{*node.system};
    spawn_request(*node.system, node.scheduler, greedy({1, 3}, 100000), gone);
    gone->receive([](TokenChunk&) {}, caf::after(std::chrono::seconds(60)) >> [] { BOOST_FAIL("no tokens"); });
  }  // the client is gone: its request must end, or the next one never gets the only slot
  {
    caf::scoped_actor next_client{*node.system};
    spawn_request(*node.system, node.scheduler, greedy(test_prompts()[0], 24), next_client);
    const Stream next = receive_stream(next_client);
    BOOST_TEST(next.done.finish_reason == "length");
    BOOST_TEST(next.tokens == engine_outputs(24)[0], boost::test_tools::per_element());
  }  // (a live scoped actor would keep the system from stopping)
  node.stop();
  // Left alone, the first request would have committed about 4000 tokens.
  BOOST_TEST(node.engine.stats().committed_tokens < 2000);
}

BOOST_AUTO_TEST_CASE(the_llm_as_pipeline_stage_actors_commits_the_same_tokens) {
  // The engine drives the LLM as 2 stage actors passing activations as messages (the SSM, when
  // speculating, is the whole model in this thread): the tokens equal the one-process engine's.
  const auto want = engine_outputs(24);
  auto backend = cpu::make_cpu_backend({2});
  RandomWeights weights(test_config(), 7);
  LlamaModel whole(weights, *backend);
  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  for (bool speculative : {false, true}) {
    std::vector<std::shared_ptr<PipelineStage>> stages;
    for (const LayerRange& r : split_layers(whole.config().num_hidden_layers, 2))
      stages.push_back(whole_stage(weights, *backend, r));
    BOOST_TEST_REQUIRE(stages.size() == 2u);
    auto handles = spawn_llm_stages(system, std::move(stages));
    // Not paged, then paged: the stages place rows by the block tables each pass brings, 10
    // blocks of 8 rows, where these requests need 5 each, so they also give way to each other.
    for (bool paged : {false, true}) {
      StagedLlm llm(system, handles.front(), whole.config());
      LocalSsms ssms(speculative ? std::vector<LlamaModel*>{&whole} : std::vector<LlamaModel*>{});
      EngineOptions options;
      if (paged)
        options.limits = {8, 512, 64, 63, 80, 8};
      else
        options.limits.kv_block_rows = 0;
      Engine engine(llm, ssms, options);
      std::vector<RequestId> ids;
      for (const auto& p : test_prompts()) ids.push_back(engine.submit(p, {24, {}}));
      engine.run([](RequestId, std::span<const std::int32_t>) {});
      int preemptions = 0;
      for (std::size_t i = 0; i < ids.size(); ++i) {
        const Request& r = engine.requests().request(ids[i]);
        const std::vector<std::int32_t> got(r.tokens.begin() + r.prompt_length, r.tokens.end());
        preemptions += r.stats.preemptions;
        BOOST_TEST_CONTEXT("speculative " << speculative << ", paged " << paged << ", prompt " << i) {
          BOOST_TEST(got == want[i], boost::test_tools::per_element());
          if (speculative) BOOST_TEST(r.stats.mean_accepted() > 1.5);  // tree compaction went through the stages
        }
      }
      BOOST_TEST(paged == (preemptions > 0));
    }
    for (auto& h : handles) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
}

BOOST_AUTO_TEST_CASE(nucleus_sampled_rows_cross_the_stages_as_summaries_or_whole) {
  // Sampling from a nucleus of the whole vocabulary (top_k 0, top_p 0.9) at T 0.3 and T 1.5: the
  // last stage sends the rows' summaries, then whole the rows whose nucleus is wider, and the
  // draws equal the one-process engine's.
  auto backend = cpu::make_cpu_backend({2});
  RandomWeights weights(test_config(), 7);
  LlamaModel whole(weights, *backend);
  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  std::vector<std::shared_ptr<PipelineStage>> stages;
  for (const LayerRange& r : split_layers(whole.config().num_hidden_layers, 2)) stages.push_back(whole_stage(weights, *backend, r));
  auto handles = spawn_llm_stages(system, std::move(stages));
  for (const float t : {0.3f, 1.5f}) {
    const GenerationConfig g{16, {t, 0, 0.9f, 5}};
    Engine alone(whole, {}, {});
    StagedLlm llm(system, handles.front(), whole.config());
    LocalSsms none({});
    Engine staged(llm, none, {});
    BOOST_TEST(generate_all(staged, g) == generate_all(alone, g), "T " << t);
  }
  for (auto& h : handles) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(the_memory_actor_hands_out_offloaded_stages_that_commit_the_same_tokens) {
  // The node's weights (two stages of the LLM paged under one budget of 80% of them, and an
  // SSM) owned by the memory actor: the stage actors it hands them to commit the one-process
  // engine's tokens, and its report shows every weight, the budget and the bytes streamed.
  const auto want = engine_outputs(24);
  test::TempDir dir;
  write_converted(RandomWeights(test_config(), 7), dir / "llm.banyan");
  auto source = open_converted(dir / "llm.banyan");
  auto node = std::make_shared<NodeWeights>();
  node->backend = cpu::make_cpu_backend({2});
  std::vector<LlamaModel*> paged;
  for (const LayerRange& r : split_layers(source->config().num_hidden_layers, 2)) {
    auto model = std::make_shared<LlamaModel>(*source, *node->backend, ModelOptions{.offload = true}, LlamaModel::Progress{}, r);
    paged.push_back(model.get());
    node->llm_stages.push_back(std::make_shared<PipelineStage>(std::vector<std::shared_ptr<LlamaModel>>{model}));
  }
  const std::size_t llm_bytes = paged[0]->weight_bytes() + paged[1]->weight_bytes();
  node->budget = llm_bytes * 4 / 5;  // the two largest units in flight, little else
  node->pagings = {page_models(paged, {.budget = node->budget})};
  RandomWeights ssm_source(test_config(), 8);
  node->ssms.push_back(std::make_shared<LlamaModel>(ssm_source, *node->backend));
  const NodeWeights* held = node.get();

  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  memory_actor memory = spawn_memory(system, std::move(node));
  const std::shared_ptr<NodeWeights> weights = weights_of(system, memory);
  BOOST_TEST(weights.get() == held);
  const MemoryReport before = report_of(system, memory);
  BOOST_TEST(before.weight_bytes == llm_bytes + weights->ssms[0]->weight_bytes());
  BOOST_TEST(before.budget_bytes == llm_bytes * 4 / 5);
  BOOST_TEST(before.paging.resident_bytes + before.paging.reserve_bytes <= before.budget_bytes);

  auto handles = spawn_llm_stages(system, weights->llm_stages);
  {
    StagedLlm llm(system, handles.front(), weights->llm_stages[0]->config());
    LocalSsms ssms({});
    Engine engine(llm, ssms, {});
    BOOST_TEST((generate_all(engine, {24, {}}) == want));
  }
  const MemoryReport after = report_of(system, memory);
  BOOST_TEST(after.paging.units_streamed >= 24);  // every step streamed what did not fit
  BOOST_TEST(after.paging.streamed_bytes > before.paging.streamed_bytes);
  for (auto& h : handles) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(memory, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_stage_error_reaches_the_engine) {
  auto backend = cpu::make_cpu_backend({1});
  RandomWeights weights(test_config(), 7);
  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  std::vector<std::shared_ptr<PipelineStage>> stages;
  for (const LayerRange& r : split_layers(test_config().num_hidden_layers, 2)) stages.push_back(whole_stage(weights, *backend, r));
  auto handles = spawn_llm_stages(system, std::move(stages));
  {
    StagedLlm llm(system, handles.front(), test_config());
    std::vector<float> logits;
    ForwardBatch b;
    b.add_causal(5, 0, 0, true);
    BOOST_CHECK_THROW(llm.forward(b, logits), Error);  // no KV cache yet: the stage says so
    llm.create_kv_cache({1, 16});
    b.slots[0] = 3;  // a slot the cache does not have
    try {
      llm.forward(b, logits);
      BOOST_FAIL("a bad batch went through");
    } catch (const Error& e) {
      BOOST_TEST(std::string(e.what()).find("layers 0-0") != std::string::npos, e.what());
    }
  }
  for (auto& h : handles) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  BOOST_CHECK_THROW(split_layers(2, 3), Error);
}

BOOST_AUTO_TEST_CASE(ssms_as_actors_propose_what_they_propose_in_one_thread) {
  // Two SSMs (the LLM itself and a different random model), each its own actor expanding at the
  // same time, give the tokens the engine gives with both in its thread: greedy (then also the
  // incremental tokens) and sampled (each SSM's draws travel with its work and back).
  const auto incremental = engine_outputs(24);
  auto backend = cpu::make_cpu_backend({2});
  RandomWeights weights(test_config(), 7), other_weights(test_config(), 8);
  LlamaModel llm(weights, *backend);
  auto ssm_llm = std::make_shared<LlamaModel>(weights, *backend);
  auto ssm_other = std::make_shared<LlamaModel>(other_weights, *backend);
  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  auto handles = spawn_ssms(system, {ssm_llm, ssm_other});
  {
    EngineOptions options;
    options.tree = {2, 3};
    for (float temperature : {0.0f, 0.9f}) {
      const GenerationConfig g{24, {temperature, 0, 1.0f, 11}};
      Engine local(llm, {ssm_llm.get(), ssm_other.get()}, options);
      const auto want = generate_all(local, g);
      LocalLlm llm_here(llm);
      ActorSsms ssms(system, handles, {ssm_llm->config(), ssm_other->config()});
      Engine engine(llm_here, ssms, options);
      const auto got = generate_all(engine, g);
      for (std::size_t i = 0; i < want.size(); ++i)
        BOOST_TEST_CONTEXT("temperature " << temperature << ", prompt " << i) {
          BOOST_TEST(got[i] == want[i], boost::test_tools::per_element());
          if (temperature == 0) BOOST_TEST(got[i] == incremental[i], boost::test_tools::per_element());
        }
      BOOST_TEST(engine.stats().committed_tokens > engine.stats().steps);  // the trees were accepted, some
    }
  }
  for (auto& h : handles) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(an_ssm_error_reaches_the_engine) {
  auto backend = cpu::make_cpu_backend({1});
  RandomWeights weights(test_config(), 7);
  auto model = std::make_shared<LlamaModel>(weights, *backend);
  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  auto handles = spawn_ssms(system, {model});
  {
    ActorSsms ssms(system, handles, {model->config()});
    SsmWork work;
    work.jobs.push_back({0, 3, 0, {1, 2, 3, 4}, {1, 2}, {}, Rng(1)});
    BOOST_CHECK_THROW(ssms.run({work}), Error);  // no KV cache yet
    ssms.create_kv_caches({1, 32});
    BOOST_TEST(ssms.run({work}).at(0).trees.at(0).size() == 3);  // a chain of 2 below the root
    work.commits.clear();
    work.jobs[0] = {0, 9, 8, {5, 6}, {1, 2}, {}, Rng(1)};  // starts after tokens the SSM never saw
    try {
      ssms.run({work});
      BOOST_FAIL("a job with a gap went through");
    } catch (const Error& e) {
      BOOST_TEST(std::string(e.what()).find("skips tokens") != std::string::npos, e.what());
    }
  }
  for (auto& h : handles) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

namespace {

// Serializes `in` and reads it back into `out`, as a message between nodes is.
template <class T>
void through_the_wire(caf::actor_system& system, T& in, T& out) {
  std::vector<char> buf;
  caf::binary_serializer sink{system, buf};
  BOOST_TEST_REQUIRE(!sink(in));
  caf::binary_deserializer source{system, buf};
  BOOST_TEST_REQUIRE(!source(out));
}

}  // namespace

BOOST_AUTO_TEST_CASE(ssm_messages_cross_the_wire_intact) {
  // An SSM on another node gets its work, and answers its trees, serialized: a sampled tree keeps
  // its drafts' distributions, the generator its state.
  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  SsmWork work;
  work.commits.push_back({1, 7, {4, 5}});
  work.prefill.push_back({2, 0, {1, 9, 9}});
  Rng rng(42);
  rng.next();
  work.jobs.push_back({1, 9, 8, {5, 6}, {3, 4}, {0.7f, 40, 0.9f, 5}, rng, {3, 1}});
  SsmTrees trees;
  TokenTree t(6);
  const int a = t.add_child(0, 10), b = t.add_child(a, 11);
  auto q = std::make_shared<const std::vector<float>>(std::vector<float>{0.25f, 0.75f});
  t.add_draft(a, q);
  t.add_draft(b, q);
  trees.trees.push_back(t);
  trees.rngs.push_back(rng);

  SsmWork work2;
  SsmTrees trees2;
  through_the_wire(system, work, work2);
  through_the_wire(system, trees, trees2);

  BOOST_TEST(work2.commits.at(0).accepted == work.commits[0].accepted, boost::test_tools::per_element());
  BOOST_TEST(work2.prefill.at(0).tokens == work.prefill[0].tokens, boost::test_tools::per_element());
  const SsmJob &j = work.jobs[0], &j2 = work2.jobs.at(0);
  BOOST_TEST((j2.slot == j.slot && j2.root_row == j.root_row && j2.first == j.first && j2.tokens == j.tokens));
  BOOST_TEST((j2.shape.width == 3 && j2.shape.depth == 4));
  BOOST_TEST(j2.blocks == j.blocks, boost::test_tools::per_element());
  BOOST_TEST((j2.sampling.temperature == 0.7f && j2.sampling.top_k == 40 && j2.sampling.top_p == 0.9f && j2.sampling.seed == 5u));
  Rng r1 = j.rng, r2 = j2.rng;
  BOOST_TEST(r1.next() == r2.next());
  const TokenTree& t2 = trees2.trees.at(0);
  BOOST_TEST_REQUIRE(t2.size() == 3);
  BOOST_TEST((t2.node(2).token == 11 && t2.node(2).parent == 1 && t2.node(2).depth == 2));
  BOOST_TEST_REQUIRE(t2.node(0).drafts.size() == 1u);
  BOOST_TEST(*t2.node(0).drafts[0].q == *q, boost::test_tools::per_element());
  BOOST_TEST(t2.ancestor_mask(2) == t.ancestor_mask(2));
}

BOOST_AUTO_TEST_CASE(stage_messages_carry_block_tables_and_nucleus_sampling_across_the_wire) {
  // A stage in another process places KV rows by what the pass brings and forms the summaries it
  // asks for: the batch's block tables and nucleus sampling, the moves' tables and the cache's
  // layout arrive as sent.
  caf::actor_system_config config;
  configure_actor_system(config);
  caf::actor_system system(config);
  StageForward f;
  f.batch.add_causal(5, 1, 20, true);
  f.batch.add_causal(6, 0, 3, true);
  f.batch.attach_block_tables([](int slot) { return slot == 1 ? std::vector<std::int32_t>{7, 2} : std::vector<std::int32_t>{4}; });
  f.batch.summary_k = 64;
  f.batch.nucleus_temperature = {0.7f, 0.0f};
  f.batch.nucleus_top_p = {0.9f, 1.0f};
  f.kv_moves.push_back({1, {21}, {20}, {7, 2}});
  KvLayout layout{8, 300, {16, 40}};
  StageForward f2;
  KvLayout layout2;
  through_the_wire(system, f, f2);
  through_the_wire(system, layout, layout2);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto sent = f.batch.block_table(i), got = f2.batch.block_table(i);
    BOOST_TEST(std::vector<std::int32_t>(got.begin(), got.end()) == std::vector<std::int32_t>(sent.begin(), sent.end()),
               boost::test_tools::per_element());
  }
  BOOST_TEST(f2.batch.block_table(0).size() == 2u);
  BOOST_TEST(f2.batch.summary_k == 64);
  BOOST_TEST(f2.batch.nucleus_temperature == f.batch.nucleus_temperature, boost::test_tools::per_element());
  BOOST_TEST(f2.batch.nucleus_top_p == f.batch.nucleus_top_p, boost::test_tools::per_element());
  BOOST_TEST(f2.kv_moves.at(0).blocks == f.kv_moves[0].blocks, boost::test_tools::per_element());
  BOOST_TEST((layout2.slots == 8 && layout2.capacity == 300 && layout2.paging.block_rows == 16 && layout2.paging.blocks == 40));
}
