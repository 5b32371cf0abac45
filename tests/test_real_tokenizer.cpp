// The real LLaMA tokenizer (from ../shared) and a random model at llama-68m's real shape
// generating through `banyan generate`. Skipped when ../shared is absent (a user's clone).
#define BOOST_TEST_MODULE test_real_tokenizer
#include <boost/test/unit_test.hpp>
#include <sstream>

#include "model/random_weights.hpp"
#include "model/tokenizer.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

std::filesystem::path llama_tokenizer() { return *test::shared_dir() / "models" / "llama-tokenizer" / "tokenizer.model"; }

struct RequireShared {
  RequireShared() {
    if (!test::shared_dir() || !std::filesystem::exists(llama_tokenizer()))
      test::skip_program("no ../shared/models/llama-tokenizer (set BANYAN_SHARED_DIR to the shared data folder)");
  }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(RequireShared);

BOOST_AUTO_TEST_CASE(known_ids) {
  Tokenizer tok(llama_tokenizer(), 1, 2);
  BOOST_TEST(tok.vocab_size() == 32000);
  const std::vector<std::int32_t> expect = {1, 2266, 526, 777, 9850, 25562, 363, 20377, 29901, 13};
  BOOST_TEST(tok.encode("Here are some travel tips for Tokyo:\n") == expect, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(round_trips_streamed) {
  Tokenizer tok(llama_tokenizer(), 1, 2);
  for (const std::string text : {"Here are some travel tips for Tokyo:\n", "東京での旅行のヒント：浅草寺、築地市場。",
                                 "Emoji: 🗼🍣😀 and 👩‍👩‍👧", "Ünïcödé, ελληνικά, русский, עברית", "tabs\tand\n\nnewlines  "}) {
    const auto ids = tok.encode(text);
    BOOST_TEST(tok.decode(ids) == text);
    StreamDecoder d(tok);
    std::string streamed;
    for (auto id : ids) streamed += d.push(id);
    BOOST_TEST(streamed + d.finish() == text);
  }
}

BOOST_AUTO_TEST_CASE(llama_68m_shape_generates) {
  test::TempDir dir;
  LlamaConfig c = llama_68m_shape();
  c.rms_norm_eps = 1e-6f;  // as in JackFram/llama-68m
  test::write_random_model(dir / "llama-68m-random", c, 68, DType::f16);
  const std::string base = test::shell_quote(test::banyan_binary().string()) + " generate --model " +
                           test::shell_quote((dir / "llama-68m-random").string()) + " --tokenizer " +
                           test::shell_quote(llama_tokenizer().string()) +
                           " --prompt 'Here are some travel tips for Tokyo:' --max-new-tokens 24";
  const auto ids = test::run_command(base + " --ids");
  BOOST_TEST_REQUIRE(ids.exit_code == 0, ids.err);
  std::istringstream in(ids.out);
  int n = 0;
  for (int id; in >> id; ++n) BOOST_TEST_REQUIRE((id >= 0 && id < 32000));
  BOOST_TEST(n > 0);
  BOOST_TEST(n <= 24);
  const auto text = test::run_command(base);
  BOOST_TEST(text.exit_code == 0);
  BOOST_TEST(text.out.rfind("Here are some travel tips for Tokyo:", 0) == 0u);
  BOOST_TEST(text.err.find("tokens/s") != std::string::npos);
}
