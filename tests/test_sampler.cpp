// Sampling: greedy, temperature, top-k, top-p, and seeds that reproduce.
#define BOOST_TEST_MODULE test_sampler
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <random>

#include "model/error.hpp"
#include "model/logit_summary.hpp"
#include "model/sampler.hpp"

using namespace banyan;
namespace tt = boost::test_tools;

namespace {
const std::vector<float> kLogits = {1.0f, 3.0f, 0.5f, 3.0f, -1.0f, 2.0f};

std::vector<double> softmax(const std::vector<float>& l, double t) {
  std::vector<double> p(l.size());
  double total = 0;
  for (std::size_t i = 0; i < l.size(); ++i) total += (p[i] = std::exp(l[i] / t));
  for (auto& x : p) x /= total;
  return p;
}
}  // namespace

BOOST_AUTO_TEST_CASE(argmax_prefers_the_lowest_index_on_ties) { BOOST_TEST(argmax(kLogits) == 1); }

BOOST_AUTO_TEST_CASE(greedy_and_degenerate_settings_pick_the_argmax) {
  Sampler greedy({});
  BOOST_TEST(greedy.next(kLogits) == 1);
  Sampler top1({1.5f, 1, 1.0f, 9});
  Sampler tiny_p({1.5f, 0, 1e-6f, 9});
  for (int i = 0; i < 50; ++i) {
    BOOST_TEST(top1.next(kLogits) == 1);
    BOOST_TEST(tiny_p.next(kLogits) == 1);
  }
}

BOOST_AUTO_TEST_CASE(distribution_applies_temperature_top_k_and_top_p) {
  std::vector<float> p;
  sampling_distribution(kLogits, {0.7f, 0, 1.0f, 0}, p);
  const auto expect = softmax(kLogits, 0.7);
  for (std::size_t i = 0; i < p.size(); ++i) BOOST_TEST(p[i] == expect[i], tt::tolerance(1e-6));

  sampling_distribution(kLogits, {1.0f, 3, 1.0f, 0}, p);  // tokens 1, 3, 5 survive
  const double z = std::exp(3.0) * 2 + std::exp(2.0);
  BOOST_TEST(p[1] == std::exp(3.0) / z, tt::tolerance(1e-6));
  BOOST_TEST(p[5] == std::exp(2.0) / z, tt::tolerance(1e-6));
  BOOST_TEST(p[0] == 0.0f);
  BOOST_TEST(p[2] == 0.0f);

  // Full softmax at T=1: p1 = p3 ~ 0.347, p5 ~ 0.128; mass 0.6 needs tokens 1 and 3 only.
  sampling_distribution(kLogits, {1.0f, 0, 0.6f, 0}, p);
  BOOST_TEST(p[1] == 0.5f, tt::tolerance(1e-6));
  BOOST_TEST(p[3] == 0.5f, tt::tolerance(1e-6));
  BOOST_TEST(p[5] == 0.0f);
  // A top_k of the whole vocabulary or more limits nothing: the same nucleus (it once took the
  // first tokens by id that reached top_p).
  for (const int k : {int(kLogits.size()), 1000}) {
    std::vector<float> q;
    sampling_distribution(kLogits, {1.0f, k, 0.6f, 0}, q);
    BOOST_TEST(q == p, tt::per_element());
  }
}

BOOST_AUTO_TEST_CASE(samples_follow_the_distribution) {
  // Chi-square goodness of fit over 20,000 draws; 22.46 is the p = 0.001 critical value for 6 df.
  const SamplingParams params{0.8f, 0, 1.0f, 123};
  Sampler s(params);
  std::vector<float> p;
  sampling_distribution(kLogits, params, p);
  std::vector<int> counts(kLogits.size());
  const int n = 20000;
  for (int i = 0; i < n; ++i) counts[std::size_t(s.next(kLogits))]++;
  double chi2 = 0;
  for (std::size_t i = 0; i < p.size(); ++i) chi2 += std::pow(counts[i] - n * p[i], 2) / (n * p[i]);
  BOOST_TEST(chi2 < 22.46);
}

BOOST_AUTO_TEST_CASE(same_seed_same_tokens) {
  auto draw = [](std::uint64_t seed) {
    Sampler s({1.0f, 0, 0.95f, seed});
    std::vector<std::int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.next(kLogits));
    return out;
  };
  BOOST_TEST(draw(7) == draw(7), tt::per_element());
  BOOST_TEST(draw(7) != draw(8));
}

BOOST_AUTO_TEST_CASE(rng_is_uniform_in_unit_interval) {
  Rng r(42);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const double u = r.uniform();
    BOOST_TEST_REQUIRE((u >= 0.0 && u < 1.0));
    sum += u;
  }
  BOOST_TEST(sum / 100000 == 0.5, tt::tolerance(0.01));
  // The generator is fully specified, so its stream is the same everywhere.
  Rng a(1), b(1);
  for (int i = 0; i < 10; ++i) BOOST_TEST(a.next() == b.next());
}

BOOST_AUTO_TEST_CASE(logit_summaries_keep_the_best_tokens_in_argmax_order_and_the_normaliser) {
  // Two rows: kLogits (a tie at the top) and its reverse.
  std::vector<float> rows = kLogits;
  rows.insert(rows.end(), kLogits.rbegin(), kLogits.rend());
  const int vocab = int(kLogits.size());
  for (int k = 1; k <= vocab; ++k) {
    std::vector<float> out(std::size_t(2 * summary_width(k)));
    summarise_logits(rows, vocab, k, out);
    const LogitRows summaries(out, vocab, k), whole(rows, vocab, 0);
    for (std::size_t r = 0; r < 2; ++r) {
      const std::span<const float> row = whole.row(r);
      // The reference: tokens sorted by logit, ties to the lower token.
      std::vector<std::int32_t> order(static_cast<std::size_t>(vocab));
      for (int t = 0; t < vocab; ++t) order[std::size_t(t)] = t;
      std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return row[std::size_t(a)] > row[std::size_t(b)]; });
      double z = 0;
      for (float v : row) z += std::exp(double(v));
      const TopLogits top = summaries.top(r, k);
      BOOST_TEST(top.tokens == std::vector<std::int32_t>(order.begin(), order.begin() + k), tt::per_element());
      for (int i = 0; i < k; ++i) BOOST_TEST(top.logits[std::size_t(i)] == row[std::size_t(order[std::size_t(i)])]);
      if (k == 1)
        BOOST_TEST(std::isnan(top.log_z));  // a summary of one token is an argmax
      else
        BOOST_TEST(double(top.log_z) == std::log(z), tt::tolerance(1e-6));
      BOOST_TEST(summaries.best(r) == argmax(row));
      BOOST_TEST(whole.best(r) == argmax(row));
      // Whole rows give the same tops, and a summary gives any fewer.
      BOOST_TEST(whole.top(r, k).tokens == top.tokens, tt::per_element());
      BOOST_TEST(summaries.top(r, 1).tokens.front() == top.tokens.front());
    }
    BOOST_CHECK_THROW(summaries.row(0), std::exception);  // the rows are not there
  }
  std::vector<float> out(2 * std::size_t(summary_width(2)));
  BOOST_CHECK_THROW(summarise_logits(rows, vocab, 0, out), std::exception);
  BOOST_CHECK_THROW(summarise_logits(rows, vocab, vocab + 1, out), std::exception);
  BOOST_CHECK_THROW(summarise_logits(rows, vocab, 3, out), std::exception);  // room for k = 2 only
  BOOST_CHECK_THROW(LogitRows(out, vocab, 2).top(0, 3), std::exception);
}

BOOST_AUTO_TEST_CASE(sampling_from_the_top_k_needs_only_a_summary_and_draws_alike) {
  const int vocab = int(kLogits.size());
  std::vector<float> summary(std::size_t(summary_width(4)));
  summarise_logits(kLogits, vocab, 4, summary);
  const LogitRows summarised(summary, vocab, 4), whole(kLogits, vocab, 0);
  for (const SamplingParams params : {SamplingParams{0.7f, 4, 1.0f, 3}, SamplingParams{1.3f, 2, 0.8f, 4},
                                      SamplingParams{1.0f, 3, 0.5f, 5}, SamplingParams{}}) {
    std::vector<float> a, b;
    summarised.distribution(0, params, a);
    whole.distribution(0, params, b);
    BOOST_TEST(a == b, tt::per_element());  // the same arithmetic on the same values
    Rng x(params.seed), y(params.seed);
    for (int i = 0; i < 100; ++i) BOOST_TEST_REQUIRE(summarised.sample(0, params, x) == whole.sample(0, params, y));
  }
  std::vector<float> p;
  // More of the row than the summary holds, or all of it (top_k 0): not there.
  BOOST_CHECK_THROW(summarised.distribution(0, {1.0f, 5, 1.0f, 0}, p), std::exception);
  BOOST_CHECK_THROW(summarised.distribution(0, {1.0f, 0, 0.9f, 0}, p), std::exception);
  // What a pass's rows need together: whole rows as soon as one samples from the whole row.
  SummaryWidth width(vocab);
  BOOST_TEST(width.k() == 1);
  width.need({}, 3);
  width.need({0.8f, 5, 1.0f, 0});
  BOOST_TEST(width.k() == 5);
  width.need({0.8f, 7, 1.0f, 0});  // beyond the vocabulary
  BOOST_TEST(width.k() == 0);
  width.need({});
  BOOST_TEST(width.k() == 0);
}

BOOST_AUTO_TEST_CASE(a_nucleus_within_the_summary_is_sampled_from_it_and_one_beyond_it_brings_its_row) {
  // Rows of 2000 logits summarised to their best 64 tokens with their weight at the temperature:
  // where the nucleus lies within those tokens the summary alone gives the whole row's
  // distribution; where it reaches beyond, the pass sends the row whole after the summaries.
  std::mt19937 gen(9);
  const int vocab = 2000, k = kMaxSummaryTokens;
  std::vector<float> rows, temperatures, top_ps;
  std::vector<SamplingParams> params;
  for (const float sigma : {0.5f, 3.0f, 8.0f})
    for (const float top_p : {0.3f, 0.9f}) {
      std::normal_distribution<float> normal(0.0f, sigma);
      for (int t = 0; t < vocab; ++t) rows.push_back(normal(gen));
      params.push_back({0.8f, 0, top_p, 0});
      temperatures.push_back(0.8f);
      top_ps.push_back(top_p);
    }
  rows.insert(rows.end(), rows.begin(), rows.begin() + vocab);  // and a greedy row: no weight formed
  params.push_back({});
  temperatures.push_back(0.0f);
  top_ps.push_back(1.0f);
  const std::size_t n = params.size(), width = std::size_t(summary_width(k));
  std::vector<float> values(n * width);
  summarise_logits(rows, vocab, k, temperatures, values);
  BOOST_TEST(std::isnan(values[n * width - 1]));
  int within = 0, beyond = 0;
  for (std::size_t r = 0; r + 1 < n; ++r)
    if (nucleus_beyond_summary(std::span(values).subspan(r * width, width), k, temperatures[r], top_ps[r])) {
      values.insert(values.end(), rows.begin() + std::ptrdiff_t(r * vocab), rows.begin() + std::ptrdiff_t((r + 1) * vocab));
      ++beyond;
    } else {
      ++within;
    }
  BOOST_TEST_REQUIRE((within > 0 && beyond > 0), within << " nuclei within their summary, " << beyond << " beyond");
  const LogitRows got(values, vocab, k, temperatures, top_ps), whole(rows, vocab, 0);
  BOOST_TEST(got.size() == n);
  for (std::size_t r = 0; r < n; ++r) {
    std::vector<float> a, b;
    got.distribution(r, params[r], a);
    whole.distribution(r, params[r], b);
    for (std::size_t t = 0; t < a.size(); ++t) {
      BOOST_TEST_REQUIRE((a[t] > 0) == (b[t] > 0), "row " << r << ", token " << t);
      BOOST_TEST_REQUIRE(std::abs(a[t] - b[t]) <= 1e-6f * b[t] + 1e-9f, "row " << r << ", token " << t);
    }
    Rng x(r), y(r);
    for (int i = 0; i < 50; ++i) BOOST_TEST_REQUIRE(got.sample(r, params[r], x) == whole.sample(r, params[r], y));
  }
  // A pass that left out a row it owed, or added one, is not read.
  BOOST_CHECK_THROW(LogitRows(std::span(values).first(values.size() - std::size_t(vocab)), vocab, k, temperatures, top_ps), Error);
  std::vector<float> extra = values;
  extra.insert(extra.end(), rows.begin(), rows.begin() + vocab);
  BOOST_CHECK_THROW(LogitRows(extra, vocab, k, temperatures, top_ps), Error);
  // What a pass needs: the nucleus rows summarised when the runner asks for it, else whole rows.
  SummaryWidth nucleus(vocab, true), plain(vocab);
  nucleus.need({0.8f, 0, 0.9f, 0});
  plain.need({0.8f, 0, 0.9f, 0});
  BOOST_TEST(nucleus.k() == k);
  BOOST_TEST(plain.k() == 0);
  nucleus.need({0.8f, 0, 1.0f, 0});  // sampling the whole vocabulary: no nucleus to hold
  BOOST_TEST(nucleus.k() == 0);
}

BOOST_AUTO_TEST_CASE(the_nucleus_of_a_whole_vocabulary_is_what_a_full_sort_gives) {
  // Flat and peaked rows of 2000 logits, nuclei from one token to most of the vocabulary: the
  // sorted head grows (64, 256, 1024, all) until it holds the mass.
  std::mt19937 gen(4);
  for (const float sigma : {0.5f, 2.0f, 5.0f})
    for (const float top_p : {0.3f, 0.9f, 0.999f}) {
      std::normal_distribution<float> normal(0.0f, sigma);
      std::vector<float> logits(2000);
      for (float& l : logits) l = normal(gen);
      logits[7] = logits[8];  // a tie, kept in token order
      const SamplingParams params{0.8f, 0, top_p, 0};
      std::vector<float> got;
      sampling_distribution(logits, params, got);
      // Reference: every token sorted, the smallest prefix reaching top_p, renormalised.
      std::vector<int> order(logits.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = int(i);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[std::size_t(a)] > logits[std::size_t(b)]; });
      std::vector<double> w;
      double total = 0;
      for (int t : order) total += w.emplace_back(std::exp((double(logits[std::size_t(t)]) - logits[std::size_t(order[0])]) / 0.8));
      std::size_t keep = 0;
      for (double mass = 0; keep < w.size() && mass < top_p; ++keep) mass += w[keep] / total;
      double kept = 0;
      for (std::size_t i = 0; i < keep; ++i) kept += w[i];
      std::vector<float> want(logits.size(), 0.0f);
      for (std::size_t i = 0; i < keep; ++i) want[std::size_t(order[i])] = float(w[i] / kept);
      BOOST_TEST_CONTEXT("sigma " << sigma << ", top_p " << top_p << ": nucleus of " << keep) {
        for (std::size_t t = 0; t < logits.size(); ++t) {
          BOOST_TEST_REQUIRE((got[t] > 0) == (want[t] > 0), "token " << t);
          BOOST_TEST_REQUIRE(std::abs(got[t] - want[t]) <= 1e-6f * want[t] + 1e-9f);
        }
      }
    }
}
