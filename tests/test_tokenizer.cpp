// The SentencePiece tokenizer and the streaming decoder, on a tokenizer the test trains itself.
#define BOOST_TEST_MODULE test_tokenizer
#include <boost/test/unit_test.hpp>

#include "model/error.hpp"
#include "model/tokenizer.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

struct TrainedTokenizer {
  test::TempDir dir;
  std::filesystem::path file = dir / "tokenizer.model";
  TrainedTokenizer() { test::train_test_tokenizer(file, 400); }
};

TrainedTokenizer& trained() {
  static TrainedTokenizer t;
  return t;
}

bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += len;
  }
  return true;
}

const std::vector<std::string> kTexts = {
    "the little cat saw a big red ball.",
    "Lily and Tim played with the dog!\nThey were happy.",
    "  leading spaces, double  spaces and a trailing one ",
    "東京の旅行のヒント: 浅草寺へ行こう",  // not in the training text: byte fallback
    "emoji 🐱🎈 and accents: café, naïve",
};

}  // namespace

BOOST_AUTO_TEST_CASE(encode_puts_bos_first) {
  Tokenizer tok(trained().file, 1, 2);
  const auto ids = tok.encode("the cat");
  BOOST_TEST(ids.front() == 1);
  BOOST_TEST(tok.encode("the cat", false).size() == ids.size() - 1);
  BOOST_TEST(tok.vocab_size() == 400);
}

BOOST_AUTO_TEST_CASE(round_trip_is_exact) {
  Tokenizer tok(trained().file, 1, 2);
  for (const auto& text : kTexts) BOOST_TEST(tok.decode(tok.encode(text)) == text);
}

BOOST_AUTO_TEST_CASE(streaming_emits_only_whole_characters) {
  Tokenizer tok(trained().file, 1, 2);
  for (const auto& text : kTexts) {
    StreamDecoder d(tok);
    std::string joined;
    int held_back = 0;
    for (auto id : tok.encode(text)) {
      const std::string piece = d.push(id);
      BOOST_TEST_REQUIRE(valid_utf8(piece), "piece of '" << text << "' is not valid UTF-8");
      if (piece.empty() && tok.is_byte(id)) ++held_back;
      joined += piece;
    }
    joined += d.finish();
    BOOST_TEST(joined == text);
    if (text.find("東京") != std::string::npos) BOOST_TEST(held_back > 0, "multi-byte characters were held back");
  }
}

BOOST_AUTO_TEST_CASE(generated_text_keeps_the_space_before_its_first_word) {
  // After the prompt "Once upon a" the model's "▁time" is " time", not "time".
  Tokenizer tok(trained().file, 1, 2);
  const auto prompt = tok.encode("the cat sat");
  const auto rest = tok.encode("on the mat", false);
  BOOST_TEST(generated_text(tok, rest) == " on the mat");
  std::vector<std::int32_t> all = prompt;
  all.insert(all.end(), rest.begin(), rest.end());
  BOOST_TEST("the cat sat" + generated_text(tok, rest) == tok.decode(all));
}

BOOST_AUTO_TEST_CASE(broken_byte_sequences_become_replacement_characters) {
  Tokenizer tok(trained().file, 1, 2);
  const auto ids = tok.encode("東");  // three byte-fallback pieces after the dummy-prefix space
  std::vector<std::int32_t> bytes;
  for (auto id : ids)
    if (tok.is_byte(id)) bytes.push_back(id);
  BOOST_REQUIRE_EQUAL(bytes.size(), 3u);
  StreamDecoder d(tok);
  BOOST_TEST(d.push(bytes[0]).empty());
  BOOST_TEST(d.push(bytes[1]).empty());
  BOOST_TEST(d.finish() == "\xef\xbf\xbd\xef\xbf\xbd");  // the character never completed
  StreamDecoder lone(tok);
  BOOST_TEST(lone.push(bytes[2]) == "\xef\xbf\xbd");  // a continuation byte on its own
}

BOOST_AUTO_TEST_CASE(ids_beyond_the_tokenizer_have_no_text) {
  // Models often pad their vocabulary past the tokenizer's pieces; such ids print nothing.
  Tokenizer tok(trained().file, 1, 2);
  BOOST_TEST(tok.token_bytes(400).empty());
  BOOST_TEST(tok.token_bytes(-1).empty());
  BOOST_TEST(tok.decode({1, 5000, 2}).empty());
}

BOOST_AUTO_TEST_CASE(utf8_prefix) {
  BOOST_TEST(complete_utf8_prefix("abc") == 3u);
  BOOST_TEST(complete_utf8_prefix("ab\xe6\x9d") == 2u);
  BOOST_TEST(complete_utf8_prefix("ab\xe6\x9d\xb1") == 5u);
  BOOST_TEST(complete_utf8_prefix("\xf0\x9f\x90") == 0u);
}

BOOST_AUTO_TEST_CASE(missing_and_corrupt_tokenizers_name_the_file) {
  auto message = [](const std::filesystem::path& p, int bos, int eos) -> std::string {
    try {
      Tokenizer t(p, bos, eos);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  test::TempDir dir;
  BOOST_TEST(message(dir / "nope.model", 1, 2).find((dir / "nope.model").string() + ": tokenizer not found") == 0u);
  test::write_bytes(dir / "junk.model", std::vector<char>(1000, 'x'));
  BOOST_TEST(message(dir / "junk.model", 1, 2).find("not a SentencePiece tokenizer model") != std::string::npos);
  auto bytes = test::read_bytes(trained().file);
  bytes.resize(bytes.size() / 3);
  test::write_bytes(dir / "cut.model", bytes);
  BOOST_TEST(message(dir / "cut.model", 1, 2).find((dir / "cut.model").string()) == 0u);
  BOOST_TEST(message(trained().file, 1, 5000).find("outside the tokenizer's 400 pieces") != std::string::npos);
}
