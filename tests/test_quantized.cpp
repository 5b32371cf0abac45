// Compressed weights: f16 stays within 1e-2 of f32, int8/int4 agree with f32 on the next token
// of real text, and `banyan convert` files load to exactly the same model. Also the errors a
// damaged converted file gets.
#define BOOST_TEST_MODULE test_quantized
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "cpu/cpu_backend.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/llama_model.hpp"
#include "model/random_weights.hpp"
#include "model/sampler.hpp"
#include "model/tokenizer.hpp"
#include "bench/story_text.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

std::unique_ptr<Backend> backend() { return cpu::make_cpu_backend({2}); }

// Logits for every position of `tokens` in one pass (teacher forcing).
std::vector<float> all_logits(LlamaModel& m, const std::vector<std::int32_t>& tokens) {
  auto kv = m.create_kv_cache({1, int(tokens.size())});
  ForwardBatch b;
  for (std::size_t i = 0; i < tokens.size(); ++i) b.add_causal(tokens[i], 0, int(i), true);
  std::vector<float> logits;
  m.forward(b, *kv, logits);
  return logits;
}

double top1_agreement(const std::vector<float>& a, const std::vector<float>& b, int vocab) {
  const std::size_t n = a.size() / std::size_t(vocab);
  int same = 0;
  for (std::size_t i = 0; i < n; ++i)
    same += argmax({a.data() + i * std::size_t(vocab), std::size_t(vocab)}) ==
            argmax({b.data() + i * std::size_t(vocab), std::size_t(vocab)});
  return double(same) / double(n);
}

double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0, mag = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, double(std::abs(got[i] - ref[i])));
    mag = std::max(mag, double(std::abs(ref[i])));
  }
  return err / mag;
}

}  // namespace

BOOST_AUTO_TEST_CASE(f16_and_bf16_logits_within_one_percent_of_f32) {
  auto be = backend();
  const RandomWeights random(llama_68m_shape(), 3);
  std::vector<std::int32_t> tokens;
  Rng rng(5);
  for (int i = 0; i < 64; ++i) tokens.push_back(std::int32_t(rng.next() % 32000));
  LlamaModel f32(random, *be, {WeightFormat::f32});
  LlamaModel f16(random, *be, {WeightFormat::f16});
  const double err = relative_error(all_logits(f16, tokens), all_logits(f32, tokens));
  BOOST_TEST_MESSAGE("llama-68m shape, f16 vs f32: max |logit error| / max |logit| = " << err);
  BOOST_TEST(err < 1e-2);
  // bf16 keeps 8 significant bits to f16's 11 (and f32's range).
  LlamaModel bf16(random, *be, {WeightFormat::bf16});
  const double bf16_err = relative_error(all_logits(bf16, tokens), all_logits(f32, tokens));
  BOOST_TEST_MESSAGE("llama-68m shape, bf16 vs f32: " << bf16_err);
  BOOST_TEST(bf16_err < 1e-2);
  // A KV cache in f16 or bf16 costs no more than those weights either.
  LlamaModel f16_kv(random, *be, {WeightFormat::f32, DType::f16});
  BOOST_TEST(relative_error(all_logits(f16_kv, tokens), all_logits(f32, tokens)) < 1e-2);
  LlamaModel bf16_kv(random, *be, {WeightFormat::f32, DType::bf16});
  const double bf16_kv_err = relative_error(all_logits(bf16_kv, tokens), all_logits(f32, tokens));
  BOOST_TEST_MESSAGE("llama-68m shape, bf16 KV cache vs f32: " << bf16_kv_err);
  BOOST_TEST(bf16_kv_err < 1e-2);
}

BOOST_AUTO_TEST_CASE(trained_demo_model_keeps_its_predictions_when_quantized) {
  const auto dir = test::source_dir() / "models" / "demo-llm";
  if (!std::filesystem::exists(dir / "model.safetensors")) {
    BOOST_TEST_MESSAGE("skipped: no trained demo model in models/demo-llm");
    return;
  }
  auto be = backend();
  auto weights = open_weights(dir);
  const Tokenizer tok(dir / "tokenizer.model", weights->config().bos_token_id, weights->config().eos_token_id);
  auto tokens = tok.encode(kStories);
  BOOST_REQUIRE_GE(tokens.size(), 513u);
  tokens.resize(513);  // 512 predicted positions
  LlamaModel f32(*weights, *be, {WeightFormat::f32});
  const auto ref = all_logits(f32, tokens);
  const int vocab = weights->config().vocab_size;
  for (const auto& [format, goal] : {std::pair{WeightFormat::q8, 0.99}, std::pair{WeightFormat::q4, 0.90}}) {
    LlamaModel q(*weights, *be, {format});
    const double rate = top1_agreement(all_logits(q, tokens), ref, vocab);
    BOOST_TEST_MESSAGE("demo LLM, " << format_name(format) << ": top-1 agreement with f32 over 512 positions " << rate);
    BOOST_TEST(rate >= goal);
  }
}

BOOST_AUTO_TEST_CASE(converted_files_load_to_the_same_model) {
  test::TempDir dir;
  auto be = backend();
  auto original = open_weights(test::fixtures_dir() / "tiny-llama");
  const std::vector<std::int32_t> tokens = {1, 9, 44, 100, 3, 5, 70};
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4}) {
    const auto file = dir / (std::string(format_name(f)) + ".banyan");
    write_converted(EncodedWeights(*original, {f}), file);
    auto converted = open_weights(file);
    BOOST_TEST(converted->config().summary() == original->config().summary());
    LlamaModel direct(*original, *be, {f});
    LlamaModel mapped(*converted, *be, {WeightFormat::f32});  // the file's formats win
    BOOST_TEST(mapped.weight_bytes() == direct.weight_bytes());
    BOOST_TEST(all_logits(mapped, tokens) == all_logits(direct, tokens), boost::test_tools::per_element());
  }
  BOOST_TEST(std::filesystem::file_size(dir / "int4.banyan") < std::filesystem::file_size(dir / "f32.banyan") / 3);
}

BOOST_AUTO_TEST_CASE(damaged_converted_files_name_the_problem) {
  test::TempDir dir;
  auto original = open_weights(test::fixtures_dir() / "tiny-llama");
  write_converted(EncodedWeights(*original, {WeightFormat::q4}), dir / "m.banyan");
  auto bytes = test::read_bytes(dir / "m.banyan");
  auto message = [&](const std::vector<char>& b) -> std::string {
    test::write_bytes(dir / "bad.banyan", b);
    try {
      open_weights(dir / "bad.banyan");
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  auto cut = bytes;
  cut.resize(cut.size() - 100);
  BOOST_TEST(message(cut).find("truncated: tensor '") != std::string::npos);
  auto garbled = bytes;
  garbled[20] = '#';
  BOOST_TEST(message(garbled).find("corrupt header") != std::string::npos);
  auto bad_len = bytes;
  bad_len[14] = 0x7f;
  BOOST_TEST(message(bad_len).find((dir / "bad.banyan").string()) == 0u);
}

BOOST_AUTO_TEST_CASE(a_slice_holds_the_same_weights_as_the_band_it_was_cut_from) {
  HostTensor t{{6, 128}, std::vector<float>(6 * 128)};
  for (std::size_t i = 0; i < t.data.size(); ++i) t.data[i] = std::sin(float(i) * 0.37f);
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4}) {
    const WeightData whole = encode(t, f);
    const WeightData band = slice(whole, 2, 3, 64, 64);  // rows 2-4, columns 64-127
    BOOST_TEST((band.rows == 3 && band.cols == 64 && band.format == f));
    std::vector<float> from_whole(128), from_band(64);
    for (int r = 0; r < 3; ++r) {
      decode_row(whole, 2 + r, from_whole.data());
      decode_row(band, r, from_band.data());
      BOOST_TEST(std::equal(from_band.begin(), from_band.end(), from_whole.begin() + 64), format_name(f) << " row " << r);
    }
  }
  const WeightData q8 = encode(t, WeightFormat::q8);
  BOOST_CHECK_THROW(slice(q8, 0, 6, 16, 32), Error);  // not whole groups
  BOOST_CHECK_THROW(slice(q8, 4, 3, 0, 32), Error);   // past the last row
}
