// Weight loading: every format gives the same model, and every kind of bad input gets an
// error that names the file and the tensor.
#define BOOST_TEST_MODULE test_weights
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <fstream>

#include "cpu/cpu_backend.hpp"
#include "model/error.hpp"
#include "model/llama_model.hpp"
#include "model/widened_weights.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;
namespace fs = std::filesystem;

namespace {

const std::vector<std::int32_t> kPrompt = {1, 17, 42, 99, 5, 77, 3, 120};

// Logits of every prompt position, computed by the CPU engine.
std::vector<float> prompt_logits(const WeightSource& weights) {
  auto backend = cpu::make_cpu_backend({1});
  LlamaModel model(weights, *backend);
  auto kv = model.create_kv_cache({1, 64});
  ForwardBatch batch;
  for (std::size_t i = 0; i < kPrompt.size(); ++i) batch.add_causal(kPrompt[i], 0, int(i), true);
  std::vector<float> logits;
  model.forward(batch, *kv, logits);
  return logits;
}
std::vector<float> prompt_logits(const fs::path& path) { return prompt_logits(*open_weights(path)); }

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Runs `fn`, which must throw Error, and returns the message.
template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  BOOST_FAIL("no error was thrown");
  return {};
}

void expect_contains(const std::string& message, const std::string& part) {
  BOOST_TEST_INFO("message: " << message);
  BOOST_TEST(message.find(part) != std::string::npos, "expected '" << part << "' in the message");
}

// Loads the whole model, so that a bad tensor anywhere is found.
void load(const fs::path& path) {
  auto weights = open_weights(path);
  auto backend = cpu::make_cpu_backend({1});
  LlamaModel model(*weights, *backend);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(dtypes)

BOOST_AUTO_TEST_CASE(f16_round_trips_every_value) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(std::uint16_t(h));
    if (std::isnan(f)) continue;
    BOOST_TEST_REQUIRE(f32_to_f16(f) == h, "half 0x" << std::hex << h);
  }
}

BOOST_AUTO_TEST_CASE(f16_known_values_and_rounding) {
  BOOST_TEST(f16_to_f32(0x3c00) == 1.0f);
  BOOST_TEST(f16_to_f32(0xc000) == -2.0f);
  BOOST_TEST(f16_to_f32(0x7bff) == 65504.0f);
  BOOST_TEST(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  BOOST_TEST(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie rounds to even
  BOOST_TEST(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  BOOST_TEST(f32_to_f16(1e6f) == 0x7c00);  // overflow to infinity
  BOOST_TEST(f32_to_f16(std::ldexp(1.0f, -26)) == 0x0000);
}

BOOST_AUTO_TEST_CASE(bf16_is_the_top_half_rounded) {
  BOOST_TEST(bf16_to_f32(0x3f80) == 1.0f);
  BOOST_TEST(f32_to_bf16(1.0f) == 0x3f80);
  BOOST_TEST(f32_to_bf16(-3.0f) == 0xc040);
  BOOST_TEST(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);  // tie to even
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(formats)

// The fixtures are one random model written by PyTorch in every format (make_fixtures.py).
BOOST_AUTO_TEST_CASE(all_f32_formats_give_the_same_logits) {
  const auto base = prompt_logits(test::fixtures_dir() / "tiny-llama");  // pytorch_model.bin
  for (const char* other : {"tiny-llama-safetensors", "tiny-llama-sharded", "tiny-llama.bin", "tiny-llama-views"}) {
    BOOST_TEST_CONTEXT(other) { BOOST_TEST(max_abs_diff(base, prompt_logits(test::fixtures_dir() / other)) <= 1e-5f); }
  }
}

BOOST_AUTO_TEST_CASE(tied_classifier_in_both_layouts) {
  const auto hf = prompt_logits(test::fixtures_dir() / "tiny-llama-tied");
  const auto l2c = prompt_logits(test::fixtures_dir() / "tiny-llama-tied.bin");
  BOOST_TEST(max_abs_diff(hf, l2c) <= 1e-5f);
  BOOST_TEST(open_weights(test::fixtures_dir() / "tiny-llama-tied.bin")->config().tie_word_embeddings);
  BOOST_TEST(!open_weights(test::fixtures_dir() / "tiny-llama.bin")->config().tie_word_embeddings);
}

BOOST_AUTO_TEST_CASE(a_widened_model_computes_what_its_base_does) {
  // Twice the width, four query heads a key/value head where the base has two, more MLP
  // columns and two more layers: 4x the weights, the base's logits (untied and tied).
  for (const char* fixture : {"tiny-llama", "tiny-llama-tied"}) {
    BOOST_TEST_CONTEXT(fixture) {
      const auto path = test::fixtures_dir() / fixture;
      const WidenedWeights wide(open_weights(path), {64, 160, 4, 8, 2});
      BOOST_TEST(wide.config().num_hidden_layers == 4);
      BOOST_TEST(wide.tensor_names().size() == open_weights(path)->tensor_names().size() + 2 * 9);
      BOOST_TEST(max_abs_diff(prompt_logits(path), prompt_logits(wide)) <= 1e-4f);
      auto backend = cpu::make_cpu_backend({1});
      BOOST_TEST(LlamaModel(wide, *backend).weight_bytes() > 3 * LlamaModel(*open_weights(path), *backend).weight_bytes());
    }
  }
  // Narrower, or query groups too small for the base's: refused.
  BOOST_CHECK_THROW(WidenedWeights(open_weights(test::fixtures_dir() / "tiny-llama"), {16, 160, 4, 2, 2}), Error);
  BOOST_CHECK_THROW(WidenedWeights(open_weights(test::fixtures_dir() / "tiny-llama"), {64, 160, 4, 8, 8}), Error);
}

BOOST_AUTO_TEST_CASE(half_precision_checkpoints) {
  const auto f32 = prompt_logits(test::fixtures_dir() / "tiny-llama");
  const auto st_f16 = prompt_logits(test::fixtures_dir() / "tiny-llama-f16");
  const auto pt_f16 = prompt_logits(test::fixtures_dir() / "tiny-llama-torch-f16");
  BOOST_TEST(max_abs_diff(st_f16, pt_f16) <= 1e-5f);  // same f16 values, two containers
  BOOST_TEST(max_abs_diff(f32, st_f16) <= 2e-2f);     // f16 rounding of the weights only
  BOOST_TEST(max_abs_diff(f32, prompt_logits(test::fixtures_dir() / "tiny-llama-bf16")) <= 1.5e-1f);
}

BOOST_AUTO_TEST_CASE(config_json_is_read) {
  auto w = open_weights(test::fixtures_dir() / "tiny-llama");
  const auto& c = w->config();
  BOOST_TEST(c.hidden_size == 32);
  BOOST_TEST(c.num_key_value_heads == 2);
  BOOST_TEST(c.group_size() == 2);
  BOOST_TEST(c.rms_norm_eps == 1e-5f);
  BOOST_TEST(c.max_position_embeddings == 256);
  BOOST_TEST(w->tensor_names().size() == 2u + 9u * 2u + 1u);
  // llama2.c keeps the shape in its header; the same numbers come back.
  const auto l2c = open_weights(test::fixtures_dir() / "tiny-llama.bin")->config();
  BOOST_TEST(l2c.summary() == c.summary());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

BOOST_AUTO_TEST_CASE(missing_path) {
  expect_contains(error_of([] { open_weights("/nonexistent/model"); }), "/nonexistent/model: no such file");
}

BOOST_AUTO_TEST_CASE(folder_without_weights) {
  test::TempDir dir;
  test::write_hf_config(dir / "config.json", test::tiny_llama_config());
  expect_contains(error_of([&] { open_weights(dir.path()); }), "no weights found");
}

BOOST_AUTO_TEST_CASE(folder_without_config) {
  test::TempDir dir;
  fs::copy(test::fixtures_dir() / "tiny-llama-safetensors" / "model.safetensors", dir / "model.safetensors");
  expect_contains(error_of([&] { open_weights(dir.path()); }), "config.json: cannot open");
}

BOOST_AUTO_TEST_CASE(non_llama_architecture) {
  test::TempDir dir;
  std::ofstream(dir / "config.json") << R"({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
                                           "n_embd": 768})";
  const auto msg = error_of([&] { open_weights(dir.path()); });
  expect_contains(msg, "config.json");
  expect_contains(msg, "'gpt2' is not a LLaMA model");
}

BOOST_AUTO_TEST_CASE(config_errors_name_the_key) {
  test::TempDir dir;
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "hidden_size": 64})";
  expect_contains(error_of([&] { open_weights(dir.path()); }), "missing key 'intermediate_size'");
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "hidden_size": "big"})";
  expect_contains(error_of([&] { open_weights(dir.path()); }), "key 'hidden_size' has the wrong type");
  std::ofstream(dir / "config.json") << "{ not json";
  expect_contains(error_of([&] { open_weights(dir.path()); }), "not valid JSON");
  auto c = test::tiny_llama_config();
  c.num_key_value_heads = 3;
  test::write_hf_config(dir / "config.json", c);
  expect_contains(error_of([&] { open_weights(dir.path()); }), "not a multiple of num_key_value_heads 3");
}

// Cuts `file` (a copy of a fixture) to `keep` bytes and checks the error names the file and `part`.
void expect_truncation_error(const fs::path& fixture, const std::string& file, double keep, const std::string& part) {
  test::TempDir dir;
  const bool folder = fs::is_directory(fixture);
  const auto target = folder ? dir / file : dir / fixture.filename().string();
  fs::copy(fixture, folder ? dir.path() : target, fs::copy_options::recursive);
  auto bytes = test::read_bytes(target);
  bytes.resize(std::size_t(double(bytes.size()) * keep));
  test::write_bytes(target, bytes);
  const auto msg = error_of([&] { load(folder ? dir.path() : target); });
  expect_contains(msg, target.string());
  expect_contains(msg, part);
}

BOOST_AUTO_TEST_CASE(truncated_safetensors) {
  expect_truncation_error(test::fixtures_dir() / "tiny-llama-safetensors", "model.safetensors", 0.6, "truncated: tensor '");
  expect_truncation_error(test::fixtures_dir() / "tiny-llama-safetensors", "model.safetensors", 0.001, "truncated");
}

BOOST_AUTO_TEST_CASE(truncated_pytorch_bin) {
  // The zip directory sits at the end: any cut loses it.
  expect_truncation_error(test::fixtures_dir() / "tiny-llama", "pytorch_model.bin", 0.7, "zip archive");
}

BOOST_AUTO_TEST_CASE(truncated_llama2c) {
  expect_truncation_error(test::fixtures_dir() / "tiny-llama.bin", "", 0.5, "truncated: tensor 'model.layers.");
  expect_truncation_error(test::fixtures_dir() / "tiny-llama.bin", "", 0.0001, "the llama2.c header");
}

BOOST_AUTO_TEST_CASE(wrong_shape) {
  test::TempDir dir;
  const auto c = test::tiny_llama_config();
  auto tensors = test::random_llama(c, 1);
  tensors["model.layers.1.mlp.up_proj.weight"].shape = {48, 64};  // same size, wrong shape
  test::write_hf_config(dir / "config.json", c);
  test::write_safetensors(dir / "model.safetensors", tensors, DType::f32);
  const auto msg = error_of([&] { load(dir.path()); });
  expect_contains(msg, dir.path().string());
  expect_contains(msg, "tensor 'model.layers.1.mlp.up_proj.weight' has shape [48, 64]");
  expect_contains(msg, "needs [96, 32]");
}

BOOST_AUTO_TEST_CASE(missing_tensor) {
  test::TempDir dir;
  auto tensors = test::random_llama(test::tiny_llama_config(), 1);
  tensors.erase("model.layers.0.self_attn.k_proj.weight");
  test::write_hf_config(dir / "config.json", test::tiny_llama_config());
  test::write_safetensors(dir / "model.safetensors", tensors, DType::f32);
  expect_contains(error_of([&] { load(dir.path()); }), "missing tensor 'model.layers.0.self_attn.k_proj.weight'");
}

BOOST_AUTO_TEST_CASE(unknown_dtype) {
  test::TempDir dir;
  test::write_hf_config(dir / "config.json", test::tiny_llama_config());
  test::write_safetensors(dir / "model.safetensors", test::random_llama(test::tiny_llama_config(), 1), DType::f32);
  // Relabel one tensor's dtype in the header: F32 -> I32 (same size, so offsets stay valid).
  auto bytes = test::read_bytes(dir / "model.safetensors");
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + 2000);
  const auto at = header.find(R"("dtype":"F32")", header.find("model.layers.0.mlp.down_proj.weight"));
  BOOST_REQUIRE(at != std::string::npos);
  bytes[8 + at + 9] = 'I';
  test::write_bytes(dir / "model.safetensors", bytes);
  const auto msg = error_of([&] { load(dir.path()); });
  expect_contains(msg, "model.layers.0.mlp.down_proj.weight");
  expect_contains(msg, "unsupported dtype 'I32'");
}

BOOST_AUTO_TEST_CASE(corrupt_safetensors_header) {
  test::TempDir dir;
  test::write_hf_config(dir / "config.json", test::tiny_llama_config());
  auto bytes = test::read_bytes(test::fixtures_dir() / "tiny-llama-safetensors" / "model.safetensors");
  bytes[9] = '#';
  test::write_bytes(dir / "model.safetensors", bytes);
  expect_contains(error_of([&] { load(dir.path()); }), "corrupt safetensors header");
  bytes[7] = 0x7f;  // absurd header length
  test::write_bytes(dir / "model.safetensors", bytes);
  expect_contains(error_of([&] { load(dir.path()); }), "not a safetensors file");
}

BOOST_AUTO_TEST_CASE(garbage_is_not_a_checkpoint) {
  test::TempDir dir;
  std::vector<char> noise(4096);
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = char((i * 7919) % 251);
  test::write_bytes(dir / "noise.bin", noise);
  expect_contains(error_of([&] { load(dir / "noise.bin"); }), (dir / "noise.bin").string());
  test::write_hf_config(dir / "config.json", test::tiny_llama_config());
  test::write_bytes(dir / "pytorch_model.bin", noise);
  expect_contains(error_of([&] { load(dir.path()); }), "not a zip archive");
}

BOOST_AUTO_TEST_CASE(corrupt_pickle) {
  test::TempDir dir;
  fs::copy(test::fixtures_dir() / "tiny-llama", dir.path(), fs::copy_options::recursive);
  auto bytes = test::read_bytes(dir / "pytorch_model.bin");
  // data.pkl is the archive's first member; scribble over its opcodes after the protocol header.
  const std::string marker = "data.pkl";
  const auto it = std::search(bytes.begin(), bytes.end(), marker.begin(), marker.end());
  BOOST_REQUIRE(it != bytes.end());
  const auto data = std::size_t(it - bytes.begin()) + marker.size();
  for (std::size_t i = data; i < data + 400 && i < bytes.size(); ++i)
    if (bytes[i] == char(0x80)) {  // PROTO opcode: the pickle starts here
      for (std::size_t j = i + 2; j < i + 40; ++j) bytes[j] = char(0xff);
      break;
    }
  test::write_bytes(dir / "pytorch_model.bin", bytes);
  const auto msg = error_of([&] { load(dir.path()); });
  expect_contains(msg, "pytorch_model.bin");
  expect_contains(msg, "pickle");
}

BOOST_AUTO_TEST_SUITE_END()
