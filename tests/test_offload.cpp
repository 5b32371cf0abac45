// Offloading at scale: a random TinyLlama-1.1B-shape model in int4, served by `banyan generate`
// under a quarter of its weights, generates what it generates resident (incremental and
// speculative), in a process whose peak memory stays under budget + KV cache + 200 MiB.
// (test_paging: the paging itself.)
#define BOOST_TEST_MODULE test_offload
#include <boost/test/unit_test.hpp>

#include "model/converted_file.hpp"
#include "model/llama_model.hpp"
#include "model/random_weights.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;

namespace {

constexpr std::size_t kMiB = std::size_t(1) << 20;

struct Run {
  std::string ids;
  std::size_t peak_rss = 0;
};

Run generate_child(const std::string& args) {
  const auto r = test::run_command(test::shell_quote(test::banyan_binary().string()) +
                                   " generate --ids --stats --max-new-tokens 8 --max-requests-per-batch 1"
                                   " --max-sequence-length 64 --prompt 'the red ball' " + args);
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const auto at = r.err.find("peak RSS ");
  BOOST_TEST_REQUIRE(at != std::string::npos, r.err);
  BOOST_TEST_MESSAGE(args << ":\n" << r.err);
  return {r.out, std::stoul(r.err.substr(at + 9)) * kMiB};
}

}  // namespace

BOOST_AUTO_TEST_CASE(tinyllama_under_a_quarter_of_its_weights) {
  test::TempDir dir;
  const LlamaConfig c = tinyllama_1b_shape();
  const auto file = dir / "tinyllama-int4.banyan";
  write_converted(EncodedWeights(RandomWeights(c, 11), {WeightFormat::q4, DType::f32}), file);
  test::train_test_tokenizer(dir / "tokenizer.model", 400);
  LlamaConfig small = c;  // a small SSM with the same vocabulary
  small.hidden_size = 64;
  small.intermediate_size = 128;
  small.num_attention_heads = 4;
  small.num_key_value_heads = 2;
  small.num_hidden_layers = 1;
  test::write_random_model(dir / "ssm", small, 12);

  std::size_t weights = 0;
  {
    auto source = open_converted(file);
    for (const auto& name : source->tensor_names()) weights += source->read_encoded(name)->bytes.size();
  }
  const std::size_t budget = weights / 4;
  const std::size_t kv = std::size_t(c.num_hidden_layers) * 2 * std::size_t(c.kv_dim()) * 4 * (64 + 64);
  const std::string model = "--model " + test::shell_quote(file.string());
  const std::string offload = " --memory-budget " + std::to_string(budget / kMiB);

  const Run resident = generate_child(model + " --mode incremental");
  const Run incremental = generate_child(model + offload + " --mode incremental");
  const Run speculative = generate_child(model + offload + " --ssm " + test::shell_quote((dir / "ssm").string()));
  BOOST_TEST(!resident.ids.empty());
  BOOST_TEST(incremental.ids == resident.ids);
  BOOST_TEST(speculative.ids == resident.ids);
  BOOST_TEST_MESSAGE("weights " << weights / kMiB << " MiB, budget " << budget / kMiB << " MiB; peak RSS resident "
                                << resident.peak_rss / kMiB << " MiB, offloaded " << incremental.peak_rss / kMiB
                                << " MiB, offloaded + SSM " << speculative.peak_rss / kMiB << " MiB");
  BOOST_TEST(incremental.peak_rss <= budget + kv + 200 * kMiB);
  BOOST_TEST(speculative.peak_rss <= budget + kv + 200 * kMiB);
  BOOST_TEST(resident.peak_rss > budget + kv + 200 * kMiB);  // without offloading, the bound does not hold
}
