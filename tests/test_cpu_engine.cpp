// The CPU engine's own consistency: one-pass prefill, token-by-token decoding, chunked
// prefill, mixed batches and token-tree masks all compute the same function.
#define BOOST_TEST_MODULE test_cpu_engine
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "cpu/cpu_backend.hpp"
#include "cpu/kernels.hpp"
#include "cpu/matmul.hpp"
#include "cpu/thread_pool.hpp"
#include "engine/engine.hpp"
#include "model/error.hpp"
#include "model/llama_model.hpp"
#include "model/random_weights.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

struct TinyModel {
  std::unique_ptr<WeightSource> weights = open_weights(test::fixtures_dir() / "tiny-llama");
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  explicit TinyModel(int threads = 2)
      : backend(cpu::make_cpu_backend({threads})), model(std::make_unique<LlamaModel>(*weights, *backend)) {}
  int vocab() const { return model->config().vocab_size; }
};

using Logits = std::vector<float>;

// Logits of one sequence fed one token per pass.
std::vector<Logits> incremental(TinyModel& e, const std::vector<std::int32_t>& seq) {
  auto kv = e.model->create_kv_cache({1, 128});
  std::vector<Logits> out;
  for (std::size_t i = 0; i < seq.size(); ++i) {
    ForwardBatch b;
    b.add_causal(seq[i], 0, int(i), true);
    out.emplace_back();
    e.model->forward(b, *kv, out.back());
  }
  return out;
}

Logits row(const Logits& all, std::size_t i, int vocab) {
  return {all.begin() + std::ptrdiff_t(i * std::size_t(vocab)), all.begin() + std::ptrdiff_t((i + 1) * std::size_t(vocab))};
}

float max_diff(const Logits& a, const Logits& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

const std::vector<std::int32_t> kSeqA = {1, 5, 9, 33, 70, 2, 101, 64, 12, 7};
const std::vector<std::int32_t> kSeqB = {1, 88, 4};
const std::vector<std::int32_t> kSeqC = {1, 19, 27, 110, 55, 3};

}  // namespace

BOOST_AUTO_TEST_CASE(prefill_equals_token_by_token) {
  TinyModel e;
  const auto step = incremental(e, kSeqA);
  auto kv = e.model->create_kv_cache({1, 128});
  ForwardBatch b;
  for (std::size_t i = 0; i < kSeqA.size(); ++i) b.add_causal(kSeqA[i], 0, int(i), true);
  Logits all;
  e.model->forward(b, *kv, all);
  for (std::size_t i = 0; i < kSeqA.size(); ++i) BOOST_TEST(max_diff(row(all, i, e.vocab()), step[i]) <= 1e-5f);
}

BOOST_AUTO_TEST_CASE(chunked_prefill_equals_one_pass) {
  TinyModel e;
  const auto step = incremental(e, kSeqA);
  auto kv = e.model->create_kv_cache({1, 128});
  for (std::size_t start = 0; start < kSeqA.size(); start += 3) {
    ForwardBatch b;
    for (std::size_t i = start; i < std::min(start + 3, kSeqA.size()); ++i) b.add_causal(kSeqA[i], 0, int(i), true);
    Logits chunk;
    e.model->forward(b, *kv, chunk);
    for (std::size_t j = 0; j < b.size(); ++j) BOOST_TEST(max_diff(row(chunk, j, e.vocab()), step[start + j]) <= 1e-5f);
  }
}

BOOST_AUTO_TEST_CASE(sequences_in_one_batch_do_not_see_each_other) {
  TinyModel e;
  const std::vector<std::vector<std::int32_t>> seqs = {kSeqA, kSeqB, kSeqC};
  std::vector<std::vector<Logits>> alone;
  for (const auto& s : seqs) alone.push_back(incremental(e, s));

  // All three prompts in one pass, slots interleaved token by token.
  auto kv = e.model->create_kv_cache({3, 128});
  ForwardBatch b;
  std::vector<std::pair<std::size_t, std::size_t>> who;
  for (std::size_t pos = 0; pos < kSeqA.size(); ++pos)
    for (std::size_t s = 0; s < seqs.size(); ++s)
      if (pos < seqs[s].size()) {
        b.add_causal(seqs[s][pos], int(s), int(pos), true);
        who.emplace_back(s, pos);
      }
  Logits all;
  e.model->forward(b, *kv, all);
  for (std::size_t j = 0; j < who.size(); ++j)
    BOOST_TEST(max_diff(row(all, j, e.vocab()), alone[who[j].first][who[j].second]) <= 1e-5f);

  // Then one decoding step for all three together.
  ForwardBatch step;
  for (std::size_t s = 0; s < seqs.size(); ++s) step.add_causal(42, int(s), int(seqs[s].size()), true);
  Logits next;
  e.model->forward(step, *kv, next);
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    auto extended = seqs[s];
    extended.push_back(42);
    BOOST_TEST(max_diff(row(next, s, e.vocab()), incremental(e, extended).back()) <= 1e-5f);
  }
}

// A token tree after the prefix [1 5 9]:      t0=33 ─┬─ t1=70
//                                                   └─ t2=2 ── t3=101
// Each tree token must see the prefix and its own ancestors only.
BOOST_AUTO_TEST_CASE(tree_mask_attends_to_ancestors_only) {
  TinyModel e;
  const std::vector<std::int32_t> prefix = {1, 5, 9};
  const std::int32_t tokens[] = {33, 70, 2, 101};
  const int depth[] = {0, 1, 1, 2};
  const std::uint64_t masks[] = {0b0001, 0b0011, 0b0101, 0b1101};
  const std::vector<std::vector<std::int32_t>> paths = {{33}, {33, 70}, {33, 2}, {33, 2, 101}};

  auto kv = e.model->create_kv_cache({1, 128});
  ForwardBatch pre;
  for (std::size_t i = 0; i < prefix.size(); ++i) pre.add_causal(prefix[i], 0, int(i), false);
  Logits unused;
  e.model->forward(pre, *kv, unused);

  ForwardBatch tree;
  for (int i = 0; i < 4; ++i) {
    tree.tokens.push_back(tokens[i]);
    tree.positions.push_back(3 + depth[i]);
    tree.slots.push_back(0);
    tree.cache_rows.push_back(3 + i);
    tree.visible.push_back(3);
    tree.tree_masks.push_back(masks[i]);
    tree.logit_rows.push_back(i);
  }
  Logits out;
  e.model->forward(tree, *kv, out);
  for (int i = 0; i < 4; ++i) {
    auto seq = prefix;
    seq.insert(seq.end(), paths[std::size_t(i)].begin(), paths[std::size_t(i)].end());
    BOOST_TEST_CONTEXT("tree token " << i) {
      BOOST_TEST(max_diff(row(out, std::size_t(i), e.vocab()), incremental(e, seq).back()) <= 1e-5f);
    }
  }
}

BOOST_AUTO_TEST_CASE(thread_count_does_not_change_results) {
  TinyModel one(1), four(4);
  const auto a = incremental(one, kSeqC), b = incremental(four, kSeqC);
  for (std::size_t i = 0; i < a.size(); ++i) BOOST_TEST(max_diff(a[i], b[i]) <= 1e-5f);
}

// Runs requests through the incremental engine; returns each request's generated tokens.
std::vector<std::vector<std::int32_t>> run_engine(Engine& engine, const std::vector<std::vector<std::int32_t>>& prompts,
                                                  int max_new, std::vector<std::vector<std::int32_t>>* streamed = nullptr) {
  std::vector<RequestId> ids;
  for (const auto& p : prompts) ids.push_back(engine.submit(p, {max_new, {}}));
  engine.run([&](RequestId id, std::span<const std::int32_t> t) {
    if (streamed) {
      auto& s = (*streamed)[std::size_t(id - ids.front())];
      s.insert(s.end(), t.begin(), t.end());
    }
  });
  std::vector<std::vector<std::int32_t>> out;
  for (auto id : ids) {
    const auto& r = engine.requests().request(id);
    out.emplace_back(r.tokens.begin() + r.prompt_length, r.tokens.end());
  }
  return out;
}

BOOST_AUTO_TEST_CASE(pipeline_stages_compute_what_the_whole_model_does) {
  // Prefill of two sequences, then a decode step, through the whole model and through stages
  // holding consecutive layer ranges, each with its own KV cache: the same logits.
  for (const char* fixture : {"tiny-llama", "tiny-llama-tied"}) {
    BOOST_TEST_CONTEXT(fixture) {
      const auto weights = open_weights(test::fixtures_dir() / fixture);
      const auto backend = cpu::make_cpu_backend({2});
      LlamaModel whole(*weights, *backend);
      const int layers = whole.config().num_hidden_layers;
      std::vector<std::unique_ptr<LlamaModel>> stages;
      for (int l = 0; l < layers; ++l)
        stages.push_back(std::make_unique<LlamaModel>(*weights, *backend, ModelOptions{}, LlamaModel::Progress{},
                                                      LayerRange{l, l + 1}));
      BOOST_TEST(stages.front()->is_first_stage());
      BOOST_TEST(!stages.front()->is_last_stage());
      BOOST_TEST(stages.back()->is_last_stage());
      Logits unused;
      BOOST_CHECK_THROW(stages.front()->forward(ForwardBatch{}, *stages.front()->create_kv_cache({1, 8}), unused), Error);
      auto whole_kv = whole.create_kv_cache({2, 64});
      std::vector<std::unique_ptr<KvCache>> stage_kv;
      for (auto& s : stages) stage_kv.push_back(s->create_kv_cache({2, 64}));

      ForwardBatch prefill, decode;
      for (std::size_t i = 0; i < kSeqA.size(); ++i) prefill.add_causal(kSeqA[i], 0, int(i), i + 1 == kSeqA.size());
      for (std::size_t i = 0; i < kSeqC.size(); ++i) prefill.add_causal(kSeqC[i], 1, int(i), true);
      decode.add_causal(40, 0, int(kSeqA.size()), true);
      decode.add_causal(41, 1, int(kSeqC.size()), true);
      for (const ForwardBatch* b : {&prefill, &decode}) {
        Logits want, activations, got;
        whole.forward(*b, *whole_kv, want);
        for (std::size_t s = 0; s < stages.size(); ++s) {
          stages[s]->forward_stage(*b, *stage_kv[s], activations, got);
          activations.swap(got);
        }
        BOOST_TEST(max_diff(activations, want) == 0.0f);
      }
      Logits out;
      BOOST_CHECK_THROW(stages[1]->forward_stage(decode, *stage_kv[1], Logits(3, 0.0f), out), Error);  // wrong width
    }
  }
  BOOST_CHECK_THROW(LlamaModel(*open_weights(test::fixtures_dir() / "tiny-llama"), *cpu::make_cpu_backend({1}),
                               ModelOptions{}, LlamaModel::Progress{}, LayerRange{1, 1}),
                    Error);
}

BOOST_AUTO_TEST_CASE(engine_batches_and_chunks_like_single_runs) {
  TinyModel e;
  const std::vector<std::vector<std::int32_t>> prompts = {kSeqA, kSeqB, kSeqC};
  std::vector<std::vector<std::int32_t>> alone;
  for (const auto& p : prompts) {
    banyan::Engine single(*e.model, {}, {});
    alone.push_back(run_engine(single, {p}, 15)[0]);
  }
  // Two requests at a time and prefill chunks of 4 tokens: the third waits for a free slot and
  // prefills while another decodes. Same tokens, streamed in order per request.
  EngineOptions small;
  small.limits = {2, 4, 128, 0};  // requests, tokens per pass, sequence length, tree tokens
  banyan::Engine batched(*e.model, {}, small);
  std::vector<std::vector<std::int32_t>> streamed(prompts.size());
  const auto together = run_engine(batched, prompts, 15, &streamed);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    BOOST_TEST(together[i] == alone[i], boost::test_tools::per_element());
    BOOST_TEST(streamed[i] == alone[i], boost::test_tools::per_element());
    BOOST_TEST(together[i].size() <= 15u);
  }
}

BOOST_AUTO_TEST_CASE(engine_respects_max_sequence_length) {
  TinyModel e;
  EngineOptions o;
  o.limits.max_sequence_length = 14;
  banyan::Engine engine(*e.model, {}, o);
  const auto out = run_engine(engine, {kSeqA}, 100)[0];
  BOOST_TEST(kSeqA.size() + out.size() <= 14u);
  const auto too_long = engine.submit(std::vector<std::int32_t>(14, 3), {5, {}});
  BOOST_TEST(engine.requests().request(too_long).state == RequestState::failed);
  BOOST_TEST(engine.requests().request(too_long).error.find("max_sequence_length is 14") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_batches_are_rejected) {
  TinyModel e;
  auto kv = e.model->create_kv_cache({1, 8});
  Logits out;
  ForwardBatch bad_token;
  bad_token.add_causal(5000, 0, 0, true);
  BOOST_CHECK_THROW(e.model->forward(bad_token, *kv, out), Error);
  ForwardBatch bad_row;
  bad_row.add_causal(5, 0, 8, true);
  BOOST_CHECK_THROW(e.model->forward(bad_row, *kv, out), Error);
  ForwardBatch bad_slot;
  bad_slot.add_causal(5, 1, 0, true);
  BOOST_CHECK_THROW(e.model->forward(bad_slot, *kv, out), Error);
  BOOST_CHECK_THROW(e.model->forward(ForwardBatch{}, *kv, out), Error);
  // KV row moves out of the cache's range.
  const std::pair<int, int> past_end[] = {{0, 1}, {2, 8}}, negative[] = {{-1, 0}}, fine[] = {{1, 0}};
  BOOST_CHECK_THROW(e.model->move_kv_rows(*kv, 0, past_end), Error);
  BOOST_CHECK_THROW(e.model->move_kv_rows(*kv, 0, negative), Error);
  BOOST_CHECK_THROW(e.model->move_kv_rows(*kv, 1, fine), Error);
  BOOST_CHECK_NO_THROW(e.model->move_kv_rows(*kv, 0, fine));

  // A paged cache (4 blocks of 4 rows): a batch must bring tables that cover its rows.
  auto paged = e.model->create_kv_cache({2, 16, {4, 4}});
  ForwardBatch no_tables;
  no_tables.add_causal(5, 0, 0, true);
  BOOST_CHECK_THROW(e.model->forward(no_tables, *paged, out), Error);
  const std::vector<std::int32_t> short_table = {2}, wild_table = {7}, good_table = {3, 1};
  ForwardBatch beyond = no_tables;
  beyond.add_causal(6, 0, 5, true);  // row 5: a second block
  beyond.attach_block_tables([&](int) { return std::span(short_table); });
  BOOST_CHECK_THROW(e.model->forward(beyond, *paged, out), Error);
  beyond.attach_block_tables([&](int) { return std::span(wild_table); });
  BOOST_CHECK_THROW(e.model->forward(beyond, *paged, out), Error);
  beyond.attach_block_tables([&](int) { return std::span(good_table); });
  BOOST_CHECK_NO_THROW(e.model->forward(beyond, *paged, out));
  ForwardBatch tableless = beyond;  // slot 1's table is empty: none of its rows is covered
  tableless.add_causal(7, 1, 0, true);
  const std::vector<std::int32_t> none;
  tableless.attach_block_tables([&](int slot) { return std::span(slot == 0 ? good_table : none); });
  BOOST_CHECK_THROW(e.model->forward(tableless, *paged, out), Error);
  BOOST_CHECK_THROW(e.model->move_kv_rows(*paged, 0, fine), Error);  // no table
  BOOST_CHECK_THROW(e.model->move_kv_rows(*paged, 0, past_end, good_table), Error);
  BOOST_CHECK_NO_THROW(e.model->move_kv_rows(*paged, 0, fine, good_table));
  // A batch with tables for a cache that is not paged.
  BOOST_CHECK_THROW(e.model->forward(beyond, *kv, out), Error);
}

BOOST_AUTO_TEST_CASE(a_kv_cache_beyond_memory_is_a_clear_error) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  BOOST_TEST_MESSAGE("skipped under a sanitizer, whose allocator aborts on an allocation this size instead of failing it");
#else
  TinyModel e;
  try {
    e.model->create_kv_cache({1, 2000000000});
    BOOST_FAIL("a KV cache of 2e9 tokens was allocated");
  } catch (const Error& err) {
    BOOST_TEST(std::string(err.what()).find("more than can be allocated") != std::string::npos, err.what());
  }
#endif
}

BOOST_AUTO_TEST_CASE(kernels_match_their_formulas) {
  const float x[] = {0.5f, -1.25f, 3.0f, 0.0f, 2.0f, -0.75f};
  const float g[] = {1.0f, 0.5f, 2.0f, 1.0f, -1.0f, 1.5f};
  float out[6];
  cpu::rms_norm_row(x, g, 1e-5f, 6, out);
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double inv = 1.0 / std::sqrt(ss / 6 + 1e-5);
  for (int i = 0; i < 6; ++i) BOOST_TEST(out[i] == float(x[i] * inv * g[i]), boost::test_tools::tolerance(1e-6f));

  // RoPE by an angle a rotates each (j, j + half) pair by a: norms are kept, a = 0 is the identity.
  float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const float c[2] = {std::cos(0.3f), 1.0f}, s[2] = {std::sin(0.3f), 0.0f};
  cpu::rope_row(v, 2, 4, c, s);
  BOOST_TEST(v[0] == 1 * c[0] - 3 * s[0], boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(v[2] == 3 * c[0] + 1 * s[0], boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(v[1] == 2.0f);
  BOOST_TEST(v[3] == 4.0f);

  float gate[3] = {-2.0f, 0.0f, 3.0f};
  const float up[3] = {1.0f, 5.0f, -2.0f};
  cpu::silu_mul_row(gate, up, 3);
  BOOST_TEST(gate[0] == float(-2.0 / (1 + std::exp(2.0))), boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(gate[1] == 0.0f);
  BOOST_TEST(gate[2] == float(3.0 / (1 + std::exp(-3.0)) * -2.0), boost::test_tools::tolerance(1e-6f));

}

BOOST_AUTO_TEST_CASE(thread_pool_covers_every_index_once) {
  for (int threads : {1, 2, 3, 8}) {
    cpu::ThreadPool pool(threads);
    for (std::int64_t n : {1, 7, 64, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      pool.parallel_for(n, 3, [&](std::int64_t b, std::int64_t e) {
        // A nested call runs inline on the same thread instead of deadlocking.
        pool.parallel_for(e - b, 1, [&](std::int64_t nb, std::int64_t ne) {
          for (auto i = b + nb; i < b + ne; ++i) hits[std::size_t(i)]++;
        });
      });
      for (auto& h : hits) BOOST_TEST_REQUIRE(h.load() == 1);
    }
  }
}

BOOST_AUTO_TEST_CASE(models_on_two_threads_share_one_backend) {
  // SSM actors run their models on one backend at the same time: an int8 and an int4 model
  // (both quantize activations in the backend's scratch, and expand weights for sgemm), each
  // prefilling (the sgemm path) and decoding (the dot path) on its own thread, compute what
  // each computes alone.
  // Large enough that the two threads' products overlap in time.
  LlamaConfig c = test::tiny_llama_config();
  c.hidden_size = 512;
  c.intermediate_size = 1024;
  c.vocab_size = 1024;
  // A prompt long enough for the sgemm path (cpu/matmul.hpp).
  const int length = cpu::sgemm_threshold(cpu::best_kernels(), WeightFormat::q8), end = length + 16;
  c.max_position_embeddings = end;
  RandomWeights weights(c, 5);
  auto backend = cpu::make_cpu_backend({2});
  LlamaModel q4(weights, *backend, ModelOptions{WeightFormat::q4, DType::f32}), q8(weights, *backend, ModelOptions{WeightFormat::q8, DType::f32});
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(length));
  for (int p = 0; p < length; ++p) prompt[std::size_t(p)] = 3 + p % 1000;
  auto run = [&](LlamaModel& m) {
    auto kv = m.create_kv_cache({1, end});
    Logits all, step;
    ForwardBatch b;
    for (int p = 0; p < int(prompt.size()); ++p) b.add_causal(prompt[std::size_t(p)], 0, p, p + 1 == int(prompt.size()));
    m.forward(b, *kv, step);
    all.insert(all.end(), step.begin(), step.end());
    for (int p = length; p < end; ++p) {
      ForwardBatch d;
      d.add_causal(p % m.config().vocab_size, 0, p, true);
      m.forward(d, *kv, step);
      all.insert(all.end(), step.begin(), step.end());
    }
    return all;
  };
  const Logits want_q4 = run(q4), want_q8 = run(q8);
  for (int round = 0; round < 3; ++round) {
    Logits got_q8;
    std::thread other([&] { got_q8 = run(q8); });
    const Logits got_q4 = run(q4);
    other.join();
    BOOST_TEST(got_q4 == want_q4, boost::test_tools::per_element());
    BOOST_TEST(got_q8 == want_q8, boost::test_tools::per_element());
  }
}
