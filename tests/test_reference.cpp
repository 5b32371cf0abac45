#define BOOST_TEST_MODULE test_reference
// The CPU engine against an independent PyTorch implementation of LLaMA written the way
// Hugging Face's modeling_llama is (tests/reference/llama_reference.py). Skipped without PyTorch.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cpu/cpu_backend.hpp"
#include "engine/engine.hpp"
#include "model/llama_model.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

const char* kPython = "/usr/bin/python3";  // Debian's interpreter, where python3-torch lives

bool has_torch() { return test::run_command(std::string(kPython) + " -c 'import torch'").exit_code == 0; }

struct Reference {
  std::vector<std::vector<double>> logits;
  std::vector<std::int32_t> greedy;
};

Reference run_reference(const std::filesystem::path& model, const std::vector<std::int32_t>& prompt, int steps) {
  test::TempDir dir;
  std::ostringstream ids;
  for (auto t : prompt) ids << t << " ";
  const auto script = test::source_dir() / "tests" / "reference" / "llama_reference.py";
  const auto r = test::run_command(std::string(kPython) + " " + test::shell_quote(script.string()) + " --model " +
                                   test::shell_quote(model.string()) + " --prompt-ids " + test::shell_quote(ids.str()) +
                                   " --steps " + std::to_string(steps) + " --out " + test::shell_quote((dir / "ref.json").string()));
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, "reference failed: " << r.err);
  const auto j = nlohmann::json::parse(std::ifstream(dir / "ref.json"));
  return {j.at("logits").get<std::vector<std::vector<double>>>(), j.at("greedy").get<std::vector<std::int32_t>>()};
}

struct TinyModel {
  std::unique_ptr<WeightSource> weights;
  std::unique_ptr<Backend> backend = cpu::make_cpu_backend({2});
  std::unique_ptr<LlamaModel> model;
  explicit TinyModel(const std::filesystem::path& path)
      : weights(open_weights(path)), model(std::make_unique<LlamaModel>(*weights, *backend)) {}
};

void compare(const std::filesystem::path& model_dir, const std::vector<std::int32_t>& prompt, int steps) {
  const Reference ref = run_reference(model_dir, prompt, steps);
  TinyModel e(model_dir);
  const int vocab = e.model->config().vocab_size;

  // Logits of every prompt position in one prefill pass.
  auto kv = e.model->create_kv_cache({1, 256});
  ForwardBatch batch;
  for (std::size_t i = 0; i < prompt.size(); ++i) batch.add_causal(prompt[i], 0, int(i), true);
  std::vector<float> logits;
  e.model->forward(batch, *kv, logits);
  BOOST_REQUIRE_EQUAL(ref.logits.size(), prompt.size());
  double worst = 0;
  for (std::size_t i = 0; i < prompt.size(); ++i)
    for (int v = 0; v < vocab; ++v)
      worst = std::max(worst, std::abs(ref.logits[i][std::size_t(v)] - double(logits[i * std::size_t(vocab) + std::size_t(v)])));
  BOOST_TEST_MESSAGE(model_dir.filename().string() << ": max |logit - reference| = " << worst);
  BOOST_TEST(worst <= 1e-4);

  // Greedy decoding through the generator gives the reference's ids, token for token.
  banyan::Engine engine(*e.model, {}, {});
  const RequestId id = engine.submit(prompt, {steps, {}});
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  const auto& r = engine.requests().request(id);
  const std::vector<std::int32_t> generated(r.tokens.begin() + r.prompt_length, r.tokens.end());
  BOOST_TEST(generated == ref.greedy, boost::test_tools::per_element());
  BOOST_TEST(ref.greedy.size() == std::size_t(steps), "the reference stopped early at EOS");
}

struct RequireTorch {
  RequireTorch() {
    if (!has_torch()) test::skip_program(std::string(kPython) + " has no torch module (apt-get install python3-torch)");
  }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(RequireTorch);

BOOST_AUTO_TEST_CASE(untied_gqa_model_matches_pytorch) {
  compare(test::fixtures_dir() / "tiny-llama", {1, 17, 42, 99, 5}, 64);
}

BOOST_AUTO_TEST_CASE(tied_model_matches_pytorch) {
  compare(test::fixtures_dir() / "tiny-llama-tied", {1, 3, 64, 7, 100, 21, 9}, 64);
}
