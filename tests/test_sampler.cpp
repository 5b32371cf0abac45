// Sampling: greedy, temperature, top-k, top-p, and seeds that reproduce.
#define BOOST_TEST_MODULE test_sampler
#include <boost/test/unit_test.hpp>
#include <cmath>

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
