// The actor runtime on one node: request actors stream exactly the tokens the engine commits,
// a cancel ends its request, a prompt that can never run fails alone, and a client that goes
// away frees its request's slot.
#define BOOST_TEST_MODULE test_actors
#include <boost/test/unit_test.hpp>
#include <caf/all.hpp>

#include "actors/llm_stage.hpp"
#include "actors/request.hpp"
#include "actors/scheduler.hpp"
#include "cpu/cpu_backend.hpp"
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
    add_message_types(config);
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

// What the engine alone commits for these prompts.
std::vector<std::vector<std::int32_t>> engine_outputs(int max_new_tokens) {
  auto backend = cpu::make_cpu_backend({2});
  RandomWeights weights(test_config(), 7);
  LlamaModel llm(weights, *backend);
  Engine engine(llm, {}, {});
  std::vector<RequestId> ids;
  for (const auto& p : test_prompts()) ids.push_back(engine.submit(p, {max_new_tokens, {}}));
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  std::vector<std::vector<std::int32_t>> out;
  for (auto id : ids) {
    const Request& r = engine.requests().request(id);
    out.emplace_back(r.tokens.begin() + r.prompt_length, r.tokens.end());
  }
  return out;
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
  add_message_types(config);
  caf::actor_system system(config);
  for (bool speculative : {false, true}) {
    std::vector<std::shared_ptr<LlamaModel>> stages;
    for (const LayerRange& r : split_layers(whole.config().num_hidden_layers, 2))
      stages.push_back(std::make_shared<LlamaModel>(weights, *backend, ModelOptions{}, LlamaModel::Progress{}, r));
    BOOST_TEST_REQUIRE(stages.size() == 2u);
    auto handles = spawn_llm_stages(system, std::move(stages));
    {
      StagedLlm llm(system, handles, whole.config());
      Engine engine(llm, speculative ? std::vector<LlamaModel*>{&whole} : std::vector<LlamaModel*>{}, {});
      std::vector<RequestId> ids;
      for (const auto& p : test_prompts()) ids.push_back(engine.submit(p, {24, {}}));
      engine.run([](RequestId, std::span<const std::int32_t>) {});
      for (std::size_t i = 0; i < ids.size(); ++i) {
        const Request& r = engine.requests().request(ids[i]);
        const std::vector<std::int32_t> got(r.tokens.begin() + r.prompt_length, r.tokens.end());
        BOOST_TEST_CONTEXT("speculative " << speculative << ", prompt " << i) {
          BOOST_TEST(got == want[i], boost::test_tools::per_element());
          if (speculative) BOOST_TEST(r.stats.mean_accepted() > 1.5);  // tree compaction went through the stages
        }
      }
    }
    for (auto& h : handles) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
}

BOOST_AUTO_TEST_CASE(a_stage_error_reaches_the_engine) {
  auto backend = cpu::make_cpu_backend({1});
  RandomWeights weights(test_config(), 7);
  caf::actor_system_config config;
  add_message_types(config);
  caf::actor_system system(config);
  std::vector<std::shared_ptr<LlamaModel>> stages;
  for (const LayerRange& r : split_layers(test_config().num_hidden_layers, 2))
    stages.push_back(std::make_shared<LlamaModel>(weights, *backend, ModelOptions{}, LlamaModel::Progress{}, r));
  auto handles = spawn_llm_stages(system, std::move(stages));
  {
    StagedLlm llm(system, handles, test_config());
    std::vector<float> logits;
    ForwardBatch b;
    b.add_causal(5, 0, 0, true);
    BOOST_CHECK_THROW(llm.forward(b, logits), Error);  // no KV cache yet: the stage says so
    llm.create_kv_cache(1, 16);
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
