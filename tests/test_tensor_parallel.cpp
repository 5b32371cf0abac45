// Tensor parallelism: the all-reduces (a ring over the UCX data plane, shared memory within a
// process) sum exactly, the same bits on every shard; the ring fails in time, gives up when told
// its peers are gone and sums again with a restarted peer;
// a stage split into tensor shards (Megatron layout) computes the whole model's logits and, run
// by the engine, generates the same greedy tokens incrementally and speculatively; shards
// offloaded from their own files (`banyan convert --tensor-shards`) compute what resident ones do.
#define BOOST_TEST_MODULE test_tensor_parallel
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <thread>

#include "actors/transport/ring_all_reduce.hpp"
#include "cpu/cpu_backend.hpp"
#include "engine/engine.hpp"
#include "engine/local_all_reduce.hpp"
#include "engine/pipeline_stage.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/random_weights.hpp"
#include "model/tensor_shard_weights.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;
using transport::DataPlane;

namespace {

// Every rank's all_reduce_sum of its own values, run side by side; returns what each holds.
std::vector<std::vector<float>> reduce_all(const std::vector<std::shared_ptr<Collective>>& ranks,
                                           std::vector<std::vector<float>> values) {
  std::vector<std::thread> threads;
  for (std::size_t r = 0; r < ranks.size(); ++r)
    threads.emplace_back([&, r] { ranks[r]->all_reduce_sum(values[r]); });
  for (auto& t : threads) t.join();
  return values;
}

std::vector<std::vector<float>> random_values(int ranks, std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> v(std::size_t(ranks), std::vector<float>(n, 0.0f));
  for (auto& rank : v)
    for (auto& x : rank) x = normal(rng);
  return v;
}

void check_sums(const std::vector<std::vector<float>>& before, const std::vector<std::vector<float>>& after) {
  for (std::size_t i = 0; i < before.front().size(); ++i) {
    double sum = 0;
    for (const auto& rank : before) sum += rank[i];
    BOOST_TEST(std::abs(after.front()[i] - sum) < 1e-5);
    for (const auto& rank : after) BOOST_TEST(rank[i] == after.front()[i]);  // the same bits everywhere
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(ring_over_separate_data_planes_sums_exactly) {
  // Three UCX contexts and workers, as three processes would have, connected in a ring.
  std::vector<std::shared_ptr<DataPlane>> planes;
  for (int r = 0; r < 3; ++r) planes.push_back(std::make_shared<DataPlane>());
  std::vector<std::shared_ptr<Collective>> ranks;
  for (int r = 0; r < 3; ++r)
    ranks.push_back(std::make_shared<transport::RingAllReduce>(planes[std::size_t(r)], "127.0.0.1",
                                                               planes[std::size_t((r + 1) % 3)]->port(),
                                                               transport::RingOptions{.rank = r, .size = 3, .group = 9}));
  for (std::size_t n : {1u, 2u, 7u, 768u, 100'003u}) {  // fewer values than ranks, odd sizes, large
    const auto before = random_values(3, n, unsigned(n));
    check_sums(before, reduce_all(ranks, before));
  }
  BOOST_TEST(ranks[0]->stats().calls == 5u);
  BOOST_TEST(ranks[0]->stats().bytes > 2 * 100'000u * 4 * 2 / 3);
}

BOOST_AUTO_TEST_CASE(local_ring_sums_repeatedly_on_one_plane) {
  auto ranks = transport::local_ring(std::make_shared<DataPlane>(), 4);
  for (int call = 0; call < 50; ++call) {
    const auto before = random_values(4, 3000 + std::size_t(call), unsigned(call));
    check_sums(before, reduce_all(ranks, before));
  }
}

BOOST_AUTO_TEST_CASE(shared_memory_all_reduce_sums_exactly) {
  auto ranks = local_all_reduce(3);
  for (std::size_t n : {1u, 2u, 7u, 768u, 100'003u, 5u}) {  // sizes change from call to call
    const auto before = random_values(3, n, unsigned(n));
    check_sums(before, reduce_all(ranks, before));
  }
  BOOST_TEST(ranks[2]->stats().calls == 6u);
}

BOOST_AUTO_TEST_CASE(a_rank_that_never_comes_fails_the_others_in_time) {
  auto plane = std::make_shared<DataPlane>();
  transport::RingAllReduce rank0(plane, "127.0.0.1", plane->port(), {.rank = 0, .size = 2, .group = 5, .timeout = std::chrono::milliseconds(300)});
  std::vector<float> v(64, 1.0f);
  const auto start = std::chrono::steady_clock::now();
  try {
    rank0.all_reduce_sum(v);
    BOOST_FAIL("an all-reduce without its other rank returned");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()).find("heard nothing from shard 1") != std::string::npos, e.what());
  }
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(5)));
}

BOOST_AUTO_TEST_CASE(a_rank_told_its_peers_are_gone_gives_up_at_once) {
  auto plane = std::make_shared<DataPlane>();
  const auto start = std::chrono::steady_clock::now();
  transport::RingOptions o{.rank = 0, .size = 2, .group = 6};
  o.abandon = [&] { return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(200) ? "node w1 went away" : ""; };
  transport::RingAllReduce rank0(plane, "127.0.0.1", plane->port(), o);
  std::vector<float> v(64, 1.0f);
  try {
    rank0.all_reduce_sum(v);
    BOOST_FAIL("an all-reduce without its other rank returned");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()).find("gave up (all-reduce step 0): node w1 went away") != std::string::npos, e.what());
  }
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(2)));  // not the 30 s timeout
}

BOOST_AUTO_TEST_CASE(a_ring_sums_again_with_a_rank_whose_process_restarted) {
  // Rank 1's data plane goes away and a new one listens on its port, as a restarted node's does;
  // its new rank counts from nothing, but the round both are given tags the pass alike.
  auto plane0 = std::make_shared<DataPlane>();
  auto plane1 = std::make_shared<DataPlane>();
  const int port1 = plane1->port();
  const auto ring = [&](std::shared_ptr<DataPlane> plane, int rank, int next_port) {
    return std::make_shared<transport::RingAllReduce>(plane, "127.0.0.1", next_port, transport::RingOptions{.rank = rank, .size = 2, .group = 7});
  };
  auto rank0 = ring(plane0, 0, port1);
  std::vector<std::shared_ptr<Collective>> ranks{rank0, ring(plane1, 1, plane0->port())};
  for (std::uint64_t round : {40u, 41u}) {
    for (auto& r : ranks) r->begin_round(round);
    const auto before = random_values(2, 1000, unsigned(round));
    check_sums(before, reduce_all(ranks, before));
  }
  ranks[1].reset();
  plane1.reset();
  // rank 0 learns that its connection broke when UCX sees the socket close.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  plane1 = std::make_shared<DataPlane>(transport::DataPlaneOptions{.host = "127.0.0.1", .port = port1});
  ranks[1] = ring(plane1, 1, plane0->port());
  for (auto& r : ranks) r->begin_round(42);
  const auto before = random_values(2, 1000, 42);
  check_sums(before, reduce_all(ranks, before));
}

namespace {

// 8 heads over 4 key/value heads (grouped-query attention), so 2 and 4 shards both divide them.
LlamaConfig tp_config() {
  LlamaConfig c = test::tiny_llama_config();
  c.hidden_size = 64;
  c.intermediate_size = 256;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.num_hidden_layers = 3;
  return c;
}

// How the shards of a test stage sum their parts.
enum class Sum { shared_memory, ucx_ring };

// A stage of `weights`' layers split into `degree` shards, each with a backend of its own.
struct Sharded {
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<LlamaModel*> models;  // the shards', for paging
  std::shared_ptr<PipelineStage> stage;

  Sharded(const WeightSource& weights, int degree, Sum sum = Sum::shared_memory, ModelOptions options = {},
          LayerRange layers = {})
      : Sharded(std::vector<const WeightSource*>(std::size_t(degree), &weights), sum, options, layers) {}
  // Each shard loaded from its own source.
  Sharded(const std::vector<const WeightSource*>& sources, Sum sum = Sum::shared_memory, ModelOptions options = {},
          LayerRange layers = {}) {
    const int degree = int(sources.size());
    for (int r = 0; r < degree; ++r) backends.push_back(cpu::make_cpu_backend({1}));
    const auto load = [&](TensorShard shard) {
      options.shard = shard;
      auto model = std::make_shared<LlamaModel>(*sources[std::size_t(shard.rank)], *backends[std::size_t(shard.rank)],
                                                options, LlamaModel::Progress{}, layers);
      models.push_back(model.get());
      return model;
    };
    std::vector<std::shared_ptr<Collective>> collectives;
    if (degree > 1)
      collectives = sum == Sum::ucx_ring ? transport::local_ring(std::make_shared<DataPlane>(), degree) : local_all_reduce(degree);
    stage = sharded_stage(collectives, load);
  }
};

ForwardBatch prompt_batch(int length, int slot) {
  ForwardBatch b;
  for (int p = 0; p < length; ++p) b.add_causal((p * 37 + slot * 11 + 1) % 128, slot, p, true);
  return b;
}

std::vector<std::vector<std::int32_t>> run_greedy(LlmRunner& llm, SsmGroup& ssms, int batch) {
  EngineOptions o;
  o.limits.max_requests_per_batch = batch;
  o.limits.max_tokens_per_batch = 256;
  o.tree = {2, 4};
  Engine engine(llm, ssms, o);
  std::vector<RequestId> ids;
  std::mt19937 rng(3);
  for (int i = 0; i < 6; ++i) {
    std::vector<std::int32_t> prompt{1};
    for (int t = 0; t < 3 + i; ++t) prompt.push_back(std::int32_t(rng() % 128));
    GenerationConfig g;
    g.max_new_tokens = 24;
    ids.push_back(engine.submit(prompt, g));
  }
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  std::vector<std::vector<std::int32_t>> out;
  for (auto id : ids) {
    const Request& r = engine.requests().request(id);
    BOOST_TEST(r.error.empty(), r.error);
    out.emplace_back(r.tokens.begin() + r.prompt_length, r.tokens.end());
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(shards_compute_the_whole_models_logits) {
  const RandomWeights weights(tp_config(), 21);
  Sharded whole(weights, 1);
  for (auto [degree, sum] : {std::pair{2, Sum::shared_memory}, std::pair{4, Sum::shared_memory}, std::pair{2, Sum::ucx_ring},
                             std::pair{4, Sum::ucx_ring}}) {
    Sharded split(weights, degree, sum);
    BOOST_TEST(split.stage->shard(1).weight_bytes() < whole.stage->shard(0).weight_bytes());
    whole.stage->create_kv_cache({2, 64});
    split.stage->create_kv_cache({2, 64});
    // A prompt, then a decode step that reads the cache the prompt filled.
    for (ForwardBatch b : {prompt_batch(9, 0), prompt_batch(1, 1)}) {
      std::vector<float> expected, got;
      whole.stage->forward(b, {}, expected);
      split.stage->forward(b, {}, got);
      BOOST_REQUIRE(got.size() == expected.size());
      double worst = 0;
      for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - expected[i])));
      BOOST_TEST(worst < 1e-4, "degree " << degree << ": largest difference " << worst);
    }
  }
}

BOOST_AUTO_TEST_CASE(sharded_greedy_generation_equals_the_whole_model) {
  const RandomWeights weights(tp_config(), 5), draft_weights(tp_config(), 6);
  auto backend = cpu::make_cpu_backend({1});
  LlamaModel whole(weights, *backend), draft(draft_weights, *backend);
  LocalLlm whole_llm(whole);
  LocalSsms none({}), ssm({&draft}), self({&whole});
  const auto incremental = run_greedy(whole_llm, none, 3);
  for (auto [degree, sum] : {std::pair{2, Sum::shared_memory}, std::pair{4, Sum::shared_memory}, std::pair{2, Sum::ucx_ring}}) {
    Sharded shards(weights, degree, sum);
    StageLlm split(shards.stage);
    BOOST_TEST(run_greedy(split, none, 3) == incremental, "incremental, " << degree << " shards");
    BOOST_TEST(run_greedy(split, ssm, 3) == incremental, "speculative (another model as SSM), " << degree << " shards");
    BOOST_TEST(run_greedy(split, self, 1) == incremental, "speculative (the LLM as SSM), " << degree << " shards");
  }
}

BOOST_AUTO_TEST_CASE(quantized_shards_and_pipeline_stages_of_shards) {
  const RandomWeights weights(tp_config(), 8);
  ModelOptions int8;
  int8.linear = WeightFormat::q8;
  Sharded whole(weights, 1, Sum::shared_memory, int8), split(weights, 2, Sum::shared_memory, int8);
  // Two pipeline stages of two shards each: the first's activations are the second's input.
  Sharded front(weights, 2, Sum::ucx_ring, {}, {0, 2}), back(weights, 2, Sum::shared_memory, {}, {2, 3}),
      reference(weights, 1);
  for (auto* s : {&whole, &split, &front, &back, &reference}) s->stage->create_kv_cache({1, 32});
  const ForwardBatch b = prompt_batch(12, 0);
  std::vector<float> q8_whole, q8_split, middle, piped, expected;
  whole.stage->forward(b, {}, q8_whole);
  split.stage->forward(b, {}, q8_split);
  front.stage->forward(b, {}, middle);
  BOOST_TEST(middle.size() == b.size() * std::size_t(tp_config().hidden_size));
  back.stage->forward(b, middle, piped);
  reference.stage->forward(b, {}, expected);
  const auto argmax_rows = [](const std::vector<float>& logits) {
    std::vector<long> top;
    for (std::size_t r = 0; r < logits.size() / 128; ++r)
      top.push_back(std::max_element(logits.begin() + long(r * 128), logits.begin() + long(r * 128 + 128)) -
                    logits.begin() - long(r * 128));
    return top;
  };
  BOOST_TEST(argmax_rows(q8_split) == argmax_rows(q8_whole));
  BOOST_TEST(argmax_rows(piped) == argmax_rows(expected));
  for (std::size_t i = 0; i < piped.size(); ++i) BOOST_TEST(std::abs(piped[i] - expected[i]) < 1e-4);
}

BOOST_AUTO_TEST_CASE(shards_of_a_converted_file_keep_its_stored_formats) {
  // An int4 `banyan convert` file: each shard cuts its band from the stored quants and scales, so
  // the shards compute with the very weights the whole model does.
  test::TempDir dir;
  const RandomWeights random(tp_config(), 12);
  ModelOptions int4;
  int4.linear = WeightFormat::q4;
  write_converted(EncodedWeights(random, int4), dir / "model.banyan");
  const auto file = open_converted(dir / "model.banyan");
  Sharded whole(*file, 1), split(*file, 2);
  BOOST_TEST(split.stage->shard(0).weight_bytes() < whole.stage->shard(0).weight_bytes());
  whole.stage->create_kv_cache({1, 32});
  split.stage->create_kv_cache({1, 32});
  std::vector<float> expected, got;
  whole.stage->forward(prompt_batch(10, 0), {}, expected);
  split.stage->forward(prompt_batch(10, 0), {}, got);
  BOOST_REQUIRE(got.size() == expected.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - expected[i])));
  BOOST_TEST(worst < 1e-3, "largest difference " << worst);
}

namespace {

// An int4 model converted whole and as its two tensor shards' files (`banyan convert
// --tensor-shards 2`), in a temporary folder.
struct ShardFiles {
  test::TempDir dir;
  std::filesystem::path whole = dir / "model.banyan";
  ModelOptions int4{.linear = WeightFormat::q4};
  std::vector<std::unique_ptr<WeightSource>> own;  // each shard's file, opened

  ShardFiles() {
    const RandomWeights random(tp_config(), 16);
    const EncodedWeights encoded(random, int4);
    write_converted(encoded, whole);
    for (int r = 0; r < 2; ++r) {
      write_converted(TensorShardWeights(encoded, {r, 2}, int4), shard_file(whole, {r, 2}));
      own.push_back(open_shard_file(whole, {r, 2}));
      BOOST_TEST_REQUIRE(own.back() != nullptr);
    }
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(shards_offloaded_from_their_own_files_compute_what_resident_shards_do) {
  // In its own file each shard's bands lie as one range apiece, which offloading maps and drops.
  // Streamed under a budget of half their weights, the shards compute the logits that resident
  // shards cut from the whole file compute, bit for bit: the same weights, the same kernels.
  ShardFiles files;
  BOOST_TEST(shard_file(files.whole, {1, 2}).filename() == "model.shard2of2.banyan");
  BOOST_TEST((files.own[1]->tensor_shard() == TensorShard{1, 2}));
  BOOST_TEST(!files.own[1]->contains(hf_names::final_norm()));  // only shard 0 computes the classifier
  BOOST_TEST(std::filesystem::file_size(shard_file(files.whole, {1, 2})) < std::filesystem::file_size(files.whole));
  const auto whole = open_converted(files.whole);
  ModelOptions offload = files.int4;
  offload.offload = true;
  Sharded cut(*whole, 2, Sum::shared_memory, files.int4), streamed({files.own[0].get(), files.own[1].get()}, Sum::shared_memory, offload);
  std::vector<std::shared_ptr<WeightPaging>> pagings;
  for (LlamaModel* m : streamed.models) pagings.push_back(page_models({m}, {.budget = m->weight_bytes() / 2}));
  cut.stage->create_kv_cache({2, 64});
  streamed.stage->create_kv_cache({2, 64});
  for (ForwardBatch b : {prompt_batch(10, 0), prompt_batch(1, 1), prompt_batch(3, 0)}) {
    std::vector<float> expected, got;
    cut.stage->forward(b, {}, expected);
    streamed.stage->forward(b, {}, got);
    BOOST_TEST_REQUIRE(!expected.empty());
    BOOST_TEST((got == expected));
  }
  for (const auto& p : pagings) {
    BOOST_TEST(p->stats().streamed_bytes > 0);
    BOOST_TEST(p->stats().resident_bytes < p->stats().disk_bytes);
  }
}

BOOST_AUTO_TEST_CASE(a_shard_offloaded_without_its_own_file_or_loaded_as_another_is_refused) {
  ShardFiles files;
  auto backend = cpu::make_cpu_backend({1});
  const auto refused = [&](const WeightSource& source, TensorShard shard, bool offload, const std::string& says) {
    ModelOptions o = files.int4;
    o.shard = shard;
    o.offload = offload;
    try {
      LlamaModel m(source, *backend, o);
      BOOST_ERROR("loaded; expected: " << says);
    } catch (const Error& e) {
      BOOST_TEST(std::string(e.what()).find(says) != std::string::npos, e.what());
    }
  };
  const auto whole = open_converted(files.whole);
  refused(*whole, {0, 2}, true,
          "needs each shard's weights in a file of its own: write them with `banyan convert --model " +
              files.whole.string() + " --tensor-shards 2 --out " + files.whole.string() +
              "` (beside it: model.shard1of2.banyan, ...)");
  refused(*files.own[1], {0, 2}, false, "holds tensor shard 2/2 of the model; it cannot be loaded as shard 1/2");
  refused(*files.own[0], {0, 1}, false, "holds tensor shard 1/2 of the model; it cannot be loaded as the whole model");
}

BOOST_AUTO_TEST_CASE(shard_layouts_the_model_cannot_take_are_refused) {
  const RandomWeights weights(tp_config(), 1);
  auto backend = cpu::make_cpu_backend({1});
  ModelOptions three;
  three.shard = {0, 3};
  try {
    LlamaModel m(weights, *backend, three);
    BOOST_FAIL("3 shards of 8 heads loaded");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()) == "cannot split the model's 8 attention heads into 3 tensor shards");
  }
  std::vector<std::shared_ptr<LlamaModel>> halves;
  for (int r = 0; r < 2; ++r) {
    ModelOptions o;
    o.shard = {r, 2};
    halves.push_back(std::make_shared<LlamaModel>(weights, *backend, o));
  }
  BOOST_CHECK_THROW(PipelineStage({halves[1], halves[0]}), Error);  // shards out of order
  try {  // shards that cannot sum their parts say so rather than compute garbage
    PipelineStage no_ring(halves);
    BOOST_FAIL("shards without collectives made a stage");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()) == "pipeline stage: 2 tensor shards but 0 collectives");
  }
}

BOOST_AUTO_TEST_CASE(a_stage_whose_shards_are_in_two_processes_computes_the_whole_models_logits) {
  // Shard 0 and shard 1 as two stages of their own, each on its own data plane as two nodes
  // would hold them, summing over the ring between the planes; each forward gets the same round.
  const RandomWeights weights(tp_config(), 23);
  Sharded whole(weights, 1);
  std::vector<std::shared_ptr<DataPlane>> planes{std::make_shared<DataPlane>(), std::make_shared<DataPlane>()};
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::shared_ptr<PipelineStage>> halves;
  for (int r = 0; r < 2; ++r) {
    backends.push_back(cpu::make_cpu_backend({1}));
    std::vector<std::shared_ptr<Collective>> ring{std::make_shared<transport::RingAllReduce>(
        planes[std::size_t(r)], "127.0.0.1", planes[std::size_t(1 - r)]->port(), transport::RingOptions{.rank = r, .size = 2, .group = 3})};
    halves.push_back(sharded_stage(r, 2, ring, [&](TensorShard shard) {
      ModelOptions o;
      o.shard = shard;
      return std::make_shared<LlamaModel>(weights, *backends.back(), o);
    }));
  }
  BOOST_TEST((halves[0]->leads() && !halves[1]->leads()));
  whole.stage->create_kv_cache({2, 64});
  for (auto& h : halves) h->create_kv_cache({2, 64});
  std::uint64_t round = 1000;
  for (ForwardBatch b : {prompt_batch(9, 0), prompt_batch(1, 1)}) {
    std::vector<float> expected, got, unused;
    whole.stage->forward(b, {}, expected);
    ++round;
    std::thread other([&] { halves[1]->forward(b, {}, unused, round); });
    halves[0]->forward(b, {}, got, round);
    other.join();
    BOOST_TEST(unused.empty());  // shard 1 of the last stage writes no logits
    BOOST_REQUIRE(got.size() == expected.size());
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - expected[i])));
    BOOST_TEST(worst < 1e-4, "largest difference " << worst);
  }
}
