// Peak memory of the CPU backend serving a TinyLlama-1.1B-shape model in int4: at most 1.3x its
// int4 weight bytes plus its KV cache. Runs `bench/decode` in a fresh process, whose peak RSS
// is the model's alone.
#define BOOST_TEST_MODULE test_memory
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.hpp"

using namespace banyan;

BOOST_AUTO_TEST_CASE(int4_tinyllama_peak_rss) {
  test::TempDir dir;
  const auto out = dir / "mem.json";
  const auto r = test::run_command(test::shell_quote(BANYAN_DECODE_BENCH) +
                                   " --models tinyllama-1.1b --dtypes int4 --threads 2 --prompt-tokens 64"
                                   " --decode-tokens 8 --batch 1 --no-baselines --out " + test::shell_quote(out.string()));
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(std::ifstream(out));
  const auto& row = j.at("rows").at(0);
  const double weights = row.at("model_weight_bytes").get<double>(), kv = row.at("kv_cache_bytes").get<double>();
  const double peak = j.at("peak_rss_bytes").get<double>();
  BOOST_TEST_MESSAGE("peak RSS " << peak / (1 << 20) << " MiB; int4 weights " << weights / (1 << 20) << " MiB, KV "
                                  << kv / (1 << 20) << " MiB; ratio " << peak / (weights + kv));
  BOOST_TEST(peak <= 1.3 * weights + kv);
  BOOST_TEST(weights < 1.2e9 * 4.5 / 8 * 1.4);  // int4 really is ~4.5 bits a weight (+ f16 embedding)
}
