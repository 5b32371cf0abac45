// The scheduler's pure logic: admission and batching limits, token trees, tree expansion and
// verification — no model involved.
#define BOOST_TEST_MODULE test_scheduler
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "model/error.hpp"
#include "scheduler/request_manager.hpp"
#include "scheduler/token_tree.hpp"
#include "scheduler/tree_expansion.hpp"
#include "scheduler/verification.hpp"

using namespace banyan;

BOOST_AUTO_TEST_SUITE(request_manager)

namespace {
std::vector<std::int32_t> prompt_of(int n) { return std::vector<std::int32_t>(std::size_t(n), 7); }
constexpr int kVocab = 100, kEos = 2;
}  // namespace

BOOST_AUTO_TEST_CASE(limits_hold_in_every_step_of_a_random_workload) {
  std::mt19937 rng(3);
  for (bool speculative : {false, true}) {
    const SchedulerLimits lim{4, 40, 64, 20};
    RequestManager m(lim, kVocab, kEos);
    std::vector<RequestId> ids;
    for (int i = 0; i < 30; ++i) ids.push_back(m.submit(prompt_of(1 + int(rng() % 70)), {1 + int(rng() % 20), {}}));
    int steps = 0;
    while (m.has_work()) {
      BOOST_REQUIRE(++steps < 10000);
      const StepPlan plan = m.schedule(speculative ? lim.max_tree_tokens : 0);
      BOOST_TEST_REQUIRE(m.active_count() <= lim.max_requests_per_batch);
      int tree_tokens = 0;
      std::set<int> slots;
      for (const auto& d : plan.decode) {
        tree_tokens += d.tree_budget;
        BOOST_TEST_REQUIRE(d.tree_budget <= lim.max_tree_tokens);
        BOOST_TEST_REQUIRE(slots.insert(d.slot).second);
      }
      for (const auto& c : plan.prefill) BOOST_TEST_REQUIRE(slots.insert(c.slot).second);
      BOOST_TEST_REQUIRE(plan.tokens() + tree_tokens <= lim.max_tokens_per_batch);
      BOOST_TEST_REQUIRE(!plan.empty());
      // Pretend to run it: a completed prompt yields a token, a decode step 1 + up to its budget.
      for (const auto& c : plan.prefill)
        if (c.completes_prompt) m.commit(c.id, std::vector<std::int32_t>{5});
      for (const auto& d : plan.decode) {
        const int accepted = 1 + (d.tree_budget ? int(rng() % std::uint32_t(d.tree_budget + 1)) : 0);
        m.commit(d.id, std::vector<std::int32_t>(std::size_t(accepted), rng() % 50 == 0 ? kEos : 9));
      }
      for (RequestId id : ids) {
        const Request& r = m.request(id);
        if (r.state == RequestState::failed) continue;
        BOOST_TEST_REQUIRE(int(r.tokens.size()) <= lim.max_sequence_length);
        BOOST_TEST_REQUIRE(r.generated() <= r.config.max_new_tokens);
      }
    }
    for (RequestId id : ids) {
      const Request& r = m.request(id);
      // Prompts of 64 tokens or more never fit; everything else ran to its end.
      BOOST_TEST((r.prompt_length >= 64 ? r.state == RequestState::failed : r.state == RequestState::finished));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_prompt_that_can_never_fit_fails_alone) {
  RequestManager m({2, 16, 32, 0}, kVocab, kEos);
  const auto good = m.submit(prompt_of(5), {4, {}});
  const auto bad = m.submit(prompt_of(32), {4, {}});
  const auto bad_token = m.submit({1, 500}, {4, {}});
  const auto empty = m.submit({}, {4, {}});
  BOOST_TEST(m.request(bad).state == RequestState::failed);
  BOOST_TEST(m.request(bad).error.find("max_sequence_length is 32") != std::string::npos);
  BOOST_TEST(m.request(bad_token).error.find("token id 500") != std::string::npos);
  BOOST_TEST(m.request(empty).error.find("empty") != std::string::npos);
  const StepPlan plan = m.schedule(0);
  BOOST_TEST_REQUIRE(plan.prefill.size() == 1u);
  BOOST_TEST(plan.prefill[0].id == good);
  BOOST_TEST(m.request(good).state == RequestState::prefilling);
}

BOOST_AUTO_TEST_CASE(long_prompts_prefill_in_chunks_while_others_decode) {
  RequestManager m({2, 8, 100, 0}, kVocab, kEos);
  const auto a = m.submit(prompt_of(3), {50, {}});
  const auto b = m.submit(prompt_of(20), {5, {}});
  StepPlan p = m.schedule(0);  // a: 3 tokens; b: the first 5
  BOOST_TEST_REQUIRE(p.prefill.size() == 2u);
  BOOST_TEST(p.prefill[0].completes_prompt);
  BOOST_TEST((p.prefill[1].begin == 0 && p.prefill[1].end == 5 && !p.prefill[1].completes_prompt));
  m.commit(a, std::vector<std::int32_t>{9});
  p = m.schedule(0);  // a decodes (1 token) while b prefills 7 more
  BOOST_TEST_REQUIRE(p.decode.size() == 1u);
  BOOST_TEST(p.decode[0].id == a);
  BOOST_TEST(p.decode[0].root_row == 3);
  BOOST_TEST_REQUIRE(p.prefill.size() == 1u);
  BOOST_TEST((p.prefill[0].begin == 5 && p.prefill[0].end == 12));
  BOOST_CHECK_THROW(m.commit(b, std::vector<std::int32_t>{9}), Error);  // b is still prefilling
}

BOOST_AUTO_TEST_CASE(stop_rules) {
  RequestManager m({2, 64, 10, 0}, kVocab, kEos);
  const auto eos = m.submit(prompt_of(2), {20, {}});
  const auto len = m.submit(prompt_of(2), {3, {}});
  m.schedule(0);
  BOOST_TEST(m.commit(eos, std::vector<std::int32_t>{4, 5, kEos, 6}) == 2);
  BOOST_TEST(m.request(eos).finish == FinishReason::stop);
  BOOST_TEST(m.commit(len, std::vector<std::int32_t>{4, 5, 6, 7}) == 3);
  BOOST_TEST(m.request(len).finish == FinishReason::length);
  const auto seq = m.submit(prompt_of(8), {20, {}});
  m.schedule(0);
  BOOST_TEST(m.commit(seq, std::vector<std::int32_t>{4, 5, 6}) == 2);  // 8 + 2 = max_sequence_length
  BOOST_TEST(m.request(seq).finish == FinishReason::length);
  const auto done = m.take_done();
  BOOST_TEST(done.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_request_that_asks_for_incremental_decoding_gets_no_tree) {
  RequestManager m({2, 64, 100, 63}, kVocab, kEos);
  GenerationConfig incremental{20, {}};
  incremental.speculate = false;
  const auto spec = m.submit(prompt_of(2), {20, {}});
  const auto inc = m.submit(prompt_of(2), incremental);
  m.schedule(63);
  m.commit(spec, std::vector<std::int32_t>{9});
  m.commit(inc, std::vector<std::int32_t>{9});
  const StepPlan p = m.schedule(63);
  BOOST_TEST_REQUIRE(p.decode.size() == 2u);
  for (const auto& d : p.decode) BOOST_TEST(d.tree_budget == (d.id == inc ? 0 : 18), "request " << d.id << " budget " << d.tree_budget);
  // A step asked for smaller trees reserves no more.
  m.commit(spec, std::vector<std::int32_t>{9});
  m.commit(inc, std::vector<std::int32_t>{9});
  for (const auto& d : m.schedule(5).decode) BOOST_TEST(d.tree_budget == (d.id == inc ? 0 : 5));
}

BOOST_AUTO_TEST_CASE(cancel_frees_the_slot) {
  RequestManager m({1, 16, 32, 0}, kVocab, kEos);
  const auto a = m.submit(prompt_of(4), {8, {}});
  const auto b = m.submit(prompt_of(4), {8, {}});
  m.schedule(0);
  BOOST_TEST(m.request(b).state == RequestState::queued);
  BOOST_TEST(m.cancel(a));
  BOOST_TEST(!m.cancel(a));
  const StepPlan p = m.schedule(0);
  BOOST_TEST(m.request(b).state == RequestState::prefilling);
  BOOST_TEST_REQUIRE(p.prefill.size() == 1u);
  BOOST_TEST(p.prefill[0].slot == 0);
}

BOOST_AUTO_TEST_CASE(bad_limits_are_rejected) {
  BOOST_CHECK_THROW(RequestManager({8, 4, 100, 0}, kVocab, kEos), Error);
  BOOST_CHECK_THROW(RequestManager({0, 4, 100, 0}, kVocab, kEos), Error);
  BOOST_CHECK_THROW(RequestManager({1, 4, 100, 64}, kVocab, kEos), Error);
  // A paged cache must hold one whole sequence and its tree: 100 + 10 + 1 rows, 7 blocks of 16.
  BOOST_CHECK_THROW(RequestManager({4, 64, 100, 10, 96, 16}, kVocab, kEos), Error);
  BOOST_CHECK_NO_THROW(RequestManager({4, 64, 100, 10, 112, 16}, kVocab, kEos));
  BOOST_CHECK_THROW(RequestManager({4, 64, 100, 10, 112, 0}, kVocab, kEos), Error);
}

BOOST_AUTO_TEST_CASE(kv_blocks_go_to_one_slot_at_a_time_and_come_back) {
  KvBlockPool pool(6, 4, 3);
  BOOST_TEST(pool.blocks_for(9) == 3);
  BOOST_TEST(pool.reserve(0, 9));
  BOOST_TEST(pool.rows(0) == 12);
  BOOST_TEST(!pool.reserve(1, 17));  // 5 blocks, 3 free: nothing taken
  BOOST_TEST(pool.free_blocks() == 3);
  BOOST_TEST(pool.reserve_up_to(1, 17) == 12);  // as far as it goes
  BOOST_TEST(pool.free_blocks() == 0);
  std::set<std::int32_t> seen;
  for (int slot : {0, 1})
    for (auto b : pool.table(slot)) BOOST_TEST_REQUIRE(seen.insert(b).second);
  BOOST_TEST(seen.size() == 6u);
  pool.release(0);
  BOOST_TEST(pool.free_blocks() == 3);
  BOOST_TEST(pool.table(0).empty());
  BOOST_TEST(pool.reserve(2, 12));
  // Freed blocks come back lowest first, so a sequence growing alone gets adjacent ones.
  const std::vector<std::int32_t> adjacent = {0, 1, 2};
  BOOST_TEST(std::vector<std::int32_t>(pool.table(2).begin(), pool.table(2).end()) == adjacent, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_paged_cache_admits_a_request_when_its_prompts_blocks_are_free) {
  // 8 blocks of 8 rows; max_sequence_length 40 + 1 row: 6 blocks hold one sequence.
  RequestManager m({4, 64, 40, 0, 64, 8}, kVocab, kEos);
  const auto a = m.submit(prompt_of(20), {10, {}});  // 21 rows: 3 blocks
  const auto b = m.submit(prompt_of(30), {5, {}});   // 31 rows: 4 blocks
  const auto c = m.submit(prompt_of(10), {5, {}});   // waits behind b: first come, first served
  StepPlan p = m.schedule(0);
  BOOST_TEST(m.request(a).state == RequestState::prefilling);
  BOOST_TEST(m.request(b).state == RequestState::prefilling);
  BOOST_TEST(m.request(c).state == RequestState::queued);
  BOOST_TEST(m.kv_blocks()->free_blocks() == 1);
  BOOST_TEST(p.prefill.size() == 2u);
  m.commit(b, std::vector<std::int32_t>{9});
  m.commit(a, std::vector<std::int32_t>{kEos});  // a ends: its 3 blocks come back
  p = m.schedule(0);
  BOOST_TEST(m.request(c).state == RequestState::prefilling);
  BOOST_TEST_REQUIRE(p.decode.size() == 1u);
  BOOST_TEST(p.decode[0].id == b);
  // Every slot's table covers its rows.
  BOOST_TEST(m.kv_blocks()->rows(m.request(b).slot) >= 31);
  BOOST_TEST(m.kv_blocks()->rows(m.request(c).slot) >= 11);
}

BOOST_AUTO_TEST_CASE(a_decoding_request_short_of_blocks_takes_the_latest_admitted_ones) {
  // 6 blocks of 4 rows; two requests of 8-token prompts take 3 blocks each (9 rows). Without
  // prefix caching: b computes its tokens again.
  RequestManager m({2, 64, 20, 0, 24, 4, false}, kVocab, kEos);
  const auto a = m.submit(prompt_of(8), {10, {}});
  const auto b = m.submit(prompt_of(8), {10, {}});
  m.schedule(0);
  BOOST_TEST(m.kv_blocks()->free_blocks() == 0);
  m.commit(a, std::vector<std::int32_t>{10});
  m.commit(b, std::vector<std::int32_t>{11});
  // Roots at rows 8 to 11 fit their three blocks: both decode.
  StepPlan p;
  for (std::int32_t t = 12; t < 16; ++t) {
    p = m.schedule(0);
    BOOST_TEST_REQUIRE(p.decode.size() == 2u);
    m.commit(a, std::vector<std::int32_t>{t});
    m.commit(b, std::vector<std::int32_t>{t});
  }
  // a's root is row 12, in a fourth block: b, admitted last, gives its three back and waits.
  p = m.schedule(0);
  BOOST_TEST_REQUIRE(p.decode.size() == 1u);
  BOOST_TEST(p.decode[0].id == a);
  BOOST_TEST(p.decode[0].root_row == 12);
  BOOST_TEST(m.request(b).state == RequestState::queued);
  BOOST_TEST(m.request(b).stats.preemptions == 1);
  BOOST_TEST(m.request(b).generated() == 5);  // what it generated stays
  // a runs to its end; then b comes back: its prompt and generated tokens but the last go to
  // the cache again (no first token is sampled), and it decodes from its last token on.
  while (m.request(a).active()) {
    p = m.schedule(0);
    for (const auto& d : p.decode) m.commit(d.id, std::vector<std::int32_t>{14});
  }
  p = m.schedule(0);
  BOOST_TEST_REQUIRE(p.prefill.size() == 1u);
  BOOST_TEST(p.prefill[0].id == b);
  BOOST_TEST((p.prefill[0].begin == 0 && p.prefill[0].end == 12 && !p.prefill[0].completes_prompt));
  p = m.schedule(0);
  BOOST_TEST_REQUIRE(p.decode.size() == 1u);
  BOOST_TEST(p.decode[0].root_row == 12);
  BOOST_TEST(p.decode[0].root_token == 15);
}

BOOST_AUTO_TEST_CASE(a_request_takes_the_cached_blocks_of_its_prompts_prefix) {
  // 32 blocks of 8 rows.
  RequestManager m({4, 256, 100, 0, 256, 8}, kVocab, kEos);
  std::vector<std::int32_t> prompt(20);
  for (int i = 0; i < 20; ++i) prompt[std::size_t(i)] = 10 + i;
  const auto a = m.submit(prompt, {10, {}});
  StepPlan p = m.schedule(0);
  m.commit(a, std::vector<std::int32_t>{50});  // its 20 prompt rows are computed: 2 whole blocks
  const KvBlockPool& pool = *m.kv_blocks();
  BOOST_TEST(pool.cached_blocks() == 2);
  // b shares a's first 18 tokens: it takes a's two blocks and computes rows 16..19 only.
  std::vector<std::int32_t> other(prompt.begin(), prompt.begin() + 18);
  other.insert(other.end(), {90, 91});
  const auto b = m.submit(other, {10, {}});
  // c is a's first 16 tokens: its last must be computed (its logits give the first token), so
  // it takes one block.
  const auto c = m.submit({prompt.begin(), prompt.begin() + 16}, {10, {}});
  p = m.schedule(0);
  BOOST_TEST_REQUIRE(p.prefill.size() == 2u);
  BOOST_TEST((p.prefill[0].id == b && p.prefill[0].begin == 16 && p.prefill[0].end == 20 && p.prefill[0].completes_prompt));
  BOOST_TEST((p.prefill[1].id == c && p.prefill[1].begin == 8 && p.prefill[1].end == 16));
  const auto ta = pool.table(m.request(a).slot), tb = pool.table(m.request(b).slot), tc = pool.table(m.request(c).slot);
  BOOST_TEST((tb[0] == ta[0] && tb[1] == ta[1] && tc[0] == ta[0]));
  BOOST_TEST((tb[2] != ta[2] && tc[1] != ta[1]));  // rows they write are their own
  BOOST_TEST(m.request(b).stats.cached_prompt_tokens == 16);
  BOOST_TEST(m.cached_tokens() == 16 + 8);
  // Every one ends; the blocks stay cached, and a new request with a's prompt finds them.
  for (auto id : {a, b, c}) m.cancel(id);
  BOOST_TEST(pool.free_blocks() == pool.total_blocks());
  const auto d = m.submit(prompt, {10, {}});
  p = m.schedule(0);
  BOOST_TEST_REQUIRE(p.prefill.size() == 1u);
  BOOST_TEST((p.prefill[0].id == d && p.prefill[0].begin == 16));
  m.cancel(d);
  // Requests that need every block take the cached ones too: the cache forgets them.
  for (int i = 0; i < 4; ++i) m.submit(std::vector<std::int32_t>(60, 3 + i), {4, {}});
  m.schedule(0);
  BOOST_TEST(pool.free_blocks() == 0);
  BOOST_TEST(pool.cached_blocks() == 0);
}

BOOST_AUTO_TEST_CASE(a_preempted_request_takes_back_its_own_cached_blocks) {
  // As two tests above, with prefix caching: b's blocks stay cached when it gives them back; a
  // takes its last two as it grows (the ends of sequences go first), and b comes back to the
  // first: it computes its rows from row 4 on, not from 0.
  RequestManager m({2, 64, 20, 0, 24, 4}, kVocab, kEos);
  const auto a = m.submit(prompt_of(8), {10, {}});
  const auto b = m.submit(std::vector<std::int32_t>(8, 6), {10, {}});
  m.schedule(0);
  m.commit(a, std::vector<std::int32_t>{10});
  m.commit(b, std::vector<std::int32_t>{11});
  for (std::int32_t t = 12; t < 16; ++t) {
    m.schedule(0);
    m.commit(a, std::vector<std::int32_t>{t});
    m.commit(b, std::vector<std::int32_t>{t});
  }
  m.schedule(0);
  BOOST_TEST(m.request(b).state == RequestState::queued);
  while (m.request(a).active()) {
    const StepPlan p = m.schedule(0);
    for (const auto& d : p.decode) m.commit(d.id, std::vector<std::int32_t>{14});
  }
  const StepPlan p = m.schedule(0);
  BOOST_TEST_REQUIRE(p.prefill.size() == 1u);
  BOOST_TEST((p.prefill[0].id == b && p.prefill[0].begin == 4 && p.prefill[0].end == 12 && !p.prefill[0].completes_prompt));
  BOOST_TEST(m.cached_tokens() == 4);
  BOOST_TEST(m.request(b).stats.cached_prompt_tokens == 0);  // its prompt was computed
}

BOOST_AUTO_TEST_CASE(paged_limits_hold_in_every_step_of_a_random_workload) {
  // 16 blocks of 8 rows, two whole sequences of 61 rows: requests keep giving way to others.
  // Prompts start with one of three prefixes, so that with prefix caching they share blocks.
  std::mt19937 rng(9);
  const std::vector<std::vector<std::int32_t>> prefixes = {{}, std::vector<std::int32_t>(20, 7), {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}};
  for (bool caching : {false, true})
    for (bool speculative : {false, true}) {
      BOOST_TEST_CONTEXT("prefix caching " << caching << ", speculative " << speculative) {
        const SchedulerLimits lim{8, 64, 48, 12, 128, 8, caching};
        RequestManager m(lim, kVocab, kEos);
        std::vector<RequestId> ids;
        for (int i = 0; i < 40; ++i) {
          std::vector<std::int32_t> prompt = prefixes[rng() % 3];
          for (int k = 1 + int(rng() % 20); k > 0; --k) prompt.push_back(std::int32_t(20 + rng() % 60));
          ids.push_back(m.submit(prompt, {1 + int(rng() % 30), {}}));
        }
        int steps = 0;
        while (m.has_work()) {
          BOOST_REQUIRE(++steps < 10000);
          const StepPlan plan = m.schedule(speculative ? lim.max_tree_tokens : 0);
          BOOST_TEST_REQUIRE(!plan.empty());
          const KvBlockPool& pool = *m.kv_blocks();
          // Where each block is held: (request, index in its table).
          std::map<std::int32_t, std::vector<std::pair<RequestId, int>>> holders;
          for (RequestId id : ids) {
            const Request& r = m.request(id);
            if (!r.active()) continue;
            const auto table = pool.table(r.slot);
            for (std::size_t j = 0; j < table.size(); ++j) holders[table[j]].emplace_back(id, int(j));
          }
          BOOST_TEST_REQUIRE(int(holders.size()) + pool.free_blocks() == pool.total_blocks());  // none lost
          // A block in several tables holds the same tokens at the same place in each.
          for (const auto& [block, where] : holders)
            for (const auto& [id, j] : where) {
              if (where.size() < 2) break;
              BOOST_TEST_REQUIRE(j == where[0].second);
              const auto& t0 = m.request(where[0].first).tokens;
              const auto& t = m.request(id).tokens;
              BOOST_TEST_REQUIRE(int(std::min(t.size(), t0.size())) >= (j + 1) * lim.kv_block_rows);
              BOOST_TEST_REQUIRE(std::equal(t.begin() + j * lim.kv_block_rows, t.begin() + (j + 1) * lim.kv_block_rows,
                                            t0.begin() + j * lim.kv_block_rows));
            }
          // The rows a step writes lie in blocks of their own request alone.
          auto own = [&](int slot, int begin, int end) {
            const auto table = pool.table(slot);
            BOOST_TEST_REQUIRE(int(table.size()) * lim.kv_block_rows >= end);
            for (int row = begin; row < end; ++row) BOOST_TEST_REQUIRE(holders[table[std::size_t(row / lim.kv_block_rows)]].size() == 1u);
          };
          for (const auto& d : plan.decode) own(d.slot, d.root_row, d.root_row + 1 + d.tree_budget);
          for (const auto& c : plan.prefill) own(c.slot, c.begin, c.end);
          for (const auto& c : plan.prefill)
            if (c.completes_prompt) m.commit(c.id, std::vector<std::int32_t>{5});
          for (const auto& d : plan.decode) {
            const int accepted = 1 + (d.tree_budget ? int(rng() % std::uint32_t(d.tree_budget + 1)) : 0);
            m.commit(d.id, std::vector<std::int32_t>(std::size_t(accepted), 9));
          }
        }
        int preempted = 0;
        for (RequestId id : ids) {
          const Request& r = m.request(id);
          BOOST_TEST(r.state == RequestState::finished);
          BOOST_TEST(r.generated() == std::min(r.config.max_new_tokens, lim.max_sequence_length - r.prompt_length));
          preempted += r.stats.preemptions;
        }
        BOOST_TEST(preempted > 0);
        BOOST_TEST(caching == (m.cached_tokens() > 0));
        BOOST_TEST(m.kv_blocks()->free_blocks() == m.kv_blocks()->total_blocks());
      }
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(token_trees)

namespace {
std::vector<std::int32_t> path_to(const TokenTree& t, int n) {
  std::vector<std::int32_t> p;
  for (; n > 0; n = t.node(n).parent) p.insert(p.begin(), t.node(n).token);
  return p;
}
}  // namespace

BOOST_AUTO_TEST_CASE(random_candidate_sets_make_well_formed_trees) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<TokenTree> trees;
    std::vector<std::vector<std::int32_t>> paths;
    const int ssms = 1 + int(rng() % 3);
    for (int s = 0; s < ssms; ++s) {
      TokenTree t(0);
      for (int k = 0; k < 20 / ssms; ++k) {  // random walks from the root over a small vocabulary
        const int parent = int(rng() % std::uint32_t(t.size()));
        const int child = t.add_child(parent, std::int32_t(rng() % 4));
        paths.push_back(path_to(t, child));
      }
      trees.push_back(t);
    }
    const TokenTree m = TokenTree::merge(trees);
    for (int i = 1; i < m.size(); ++i) {
      const auto& n = m.node(i);
      BOOST_TEST_REQUIRE(n.parent < i);  // topological
      BOOST_TEST_REQUIRE(n.depth == m.node(n.parent).depth + 1);
      std::uint64_t expect = std::uint64_t(1) << i;
      for (int a = n.parent; a >= 0; a = m.node(a).parent) expect |= std::uint64_t(1) << a;
      BOOST_TEST_REQUIRE(m.ancestor_mask(i) == expect);
    }
    for (int i = 0; i < m.size(); ++i) {
      std::set<std::int32_t> seen;
      for (int c : m.node(i).children) BOOST_TEST_REQUIRE(seen.insert(m.node(c).token).second);  // no duplicate siblings
    }
    for (const auto& p : paths) {  // every candidate path survives the merge
      int at = 0;
      for (auto tok : p) BOOST_TEST_REQUIRE((at = m.find_child(at, tok)) > 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(merge_keeps_every_draft) {
  auto q = std::make_shared<const std::vector<float>>(std::vector<float>{0.5f, 0.5f});
  TokenTree a(3), b(3);
  a.add_draft(a.add_child(0, 1), q);
  b.add_draft(b.add_child(0, 1), q);  // the same token drawn by another SSM
  b.add_draft(b.add_child(0, 0), q);
  const TokenTree m = TokenTree::merge({a, b});
  BOOST_TEST(m.size() == 3);
  BOOST_TEST(m.node(0).drafts.size() == 3u);
  BOOST_TEST(m.node(m.node(0).drafts[0].child).token == 1);
  BOOST_TEST(m.node(0).drafts[0].child == m.node(0).drafts[1].child);
}

BOOST_AUTO_TEST_CASE(the_tree_is_capped_by_the_mask_width) {
  TokenTree t(0);
  for (int i = 1; i < kMaxTreeNodes; ++i) t.add_child(i - 1, 1);
  BOOST_CHECK_THROW(t.add_child(0, 2), std::length_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(expansion_and_verification)

namespace {
// A fixed "model": next-token logits depend on the previous token only.
std::vector<float> toy_logits(std::int32_t prev, int vocab) {
  std::vector<float> l(static_cast<std::size_t>(vocab));
  for (int v = 0; v < vocab; ++v) l[std::size_t(v)] = float(std::sin(0.7 * prev + 1.3 * v) * 3);
  return l;
}

// summary_k > 0: the rows reach the expansion as their summaries, as a backend forms them.
TokenTree expand(std::int32_t root, TreeShape shape, const SamplingParams& sp, Rng& rng, int vocab, int summary_k = 0) {
  TreeExpansion x(root, shape, sp, rng);
  while (!x.done()) {
    std::vector<float> rows;
    for (int n : x.frontier()) {
      auto l = toy_logits(x.tree().node(n).token, vocab);
      rows.insert(rows.end(), l.begin(), l.end());
    }
    if (summary_k > 0) {
      std::vector<float> summaries(rows.size() / std::size_t(vocab) * std::size_t(summary_width(summary_k)));
      summarise_logits(rows, vocab, summary_k, summaries);
      rows = std::move(summaries);
    }
    // Two rows ahead of the frontier's: the expansion reads its own from where it is told.
    const std::size_t width = summary_k > 0 ? std::size_t(summary_width(summary_k)) : std::size_t(vocab);
    rows.insert(rows.begin(), 2 * width, -1.0f);
    x.advance(LogitRows(rows, vocab, summary_k), 2);
  }
  return x.tree();
}
}  // namespace

BOOST_AUTO_TEST_CASE(beam_trees_hold_the_greedy_path_and_stay_in_budget) {
  Rng rng(1);
  for (int w = 1; w <= 4; ++w)
    for (int d = 1; d <= 8; ++d) {
      const TokenTree t = expand(5, {w, d}, {}, rng, 16);
      BOOST_TEST_REQUIRE(t.size() <= 1 + w * d);
      BOOST_TEST_REQUIRE(t.depth() == d);
      int at = 0;  // the greedy path of the toy model is in the tree, all the way down
      for (int k = 0; k < d; ++k) BOOST_TEST_REQUIRE((at = t.find_child(at, argmax(toy_logits(t.node(at).token, 16)))) > 0);
      // Greedy verification by the same model accepts that whole path plus one token.
      const auto v = verify_greedy(t, [&](int n) { return argmax(toy_logits(t.node(n).token, 16)); });
      BOOST_TEST_REQUIRE(int(v.tokens.size()) == d + 1);
    }
}

BOOST_AUTO_TEST_CASE(beam_trees_grow_alike_from_whole_rows_and_from_summaries) {
  Rng rng(3);
  for (int w = 1; w <= 4; ++w) {
    const TokenTree whole = expand(2, {w, 5}, {}, rng, 16), summarised = expand(2, {w, 5}, {}, rng, 16, w);
    BOOST_TEST_REQUIRE(whole.size() == summarised.size());
    for (int n = 0; n < whole.size(); ++n) {
      BOOST_TEST(whole.node(n).token == summarised.node(n).token);
      BOOST_TEST(whole.node(n).parent == summarised.node(n).parent);
    }
  }
}

BOOST_AUTO_TEST_CASE(sampled_chains_stay_in_budget_and_record_every_draw) {
  Rng rng(2);
  const SamplingParams sp{1.0f, 0, 1.0f, 0};
  for (int trial = 0; trial < 200; ++trial) {
    const TokenTree t = expand(3, {3, 4}, sp, rng, 6);
    BOOST_TEST_REQUIRE(t.size() <= 1 + 3 * 4);
    int draws = 0;
    for (const auto& n : t.nodes()) draws += int(n.drafts.size());
    BOOST_TEST_REQUIRE(draws == 3 * 4);  // every chain draws once per level
  }
}

BOOST_AUTO_TEST_CASE(greedy_verification_stops_at_the_first_mismatch) {
  TokenTree t(0);
  const int a = t.add_child(0, 4), b = t.add_child(a, 7);
  t.add_child(0, 5);
  // LLM argmax: after root -> 4, after 4 -> 9 (the tree offers 7), after 7 -> anything.
  const auto v = verify_greedy(t, [&](int n) { return n == 0 ? 4 : n == a ? 9 : 1; });
  BOOST_TEST(v.path == std::vector<int>{a}, boost::test_tools::per_element());
  BOOST_TEST(v.tokens == (std::vector<std::int32_t>{4, 9}), boost::test_tools::per_element());
  (void)b;
}

BOOST_AUTO_TEST_SUITE_END()
