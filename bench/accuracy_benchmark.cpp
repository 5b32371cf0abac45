// bench accuracy: how much the compressed formats change a model's predictions. Teacher-forced
// over real text (512 positions), each format's top-1 next-token agreement with f32, and the
// largest logit error relative to the largest logit.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "bench/story_text.hpp"
#include "cli/option_types.hpp"
#include "cpu/cpu_backend.hpp"
#include "model/llama_model.hpp"
#include "model/random_weights.hpp"
#include "model/sampler.hpp"
#include "model/tokenizer.hpp"

namespace banyan::bench {

namespace {

std::vector<float> teacher_forced_logits(LlamaModel& m, const std::vector<std::int32_t>& tokens) {
  auto kv = m.create_kv_cache({1, int(tokens.size())});
  ForwardBatch b;
  for (std::size_t i = 0; i < tokens.size(); ++i) b.add_causal(tokens[i], 0, int(i), true);
  std::vector<float> logits;
  m.forward(b, *kv, logits);
  return logits;
}

struct Comparison {
  double top1_agreement = 0, relative_error = 0;
};

Comparison compare(const std::vector<float>& got, const std::vector<float>& ref, int vocab) {
  const std::size_t n = ref.size() / std::size_t(vocab);
  int same = 0;
  double err = 0, mag = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::span<const float> a(got.data() + i * std::size_t(vocab), std::size_t(vocab)),
        b(ref.data() + i * std::size_t(vocab), std::size_t(vocab));
    same += argmax(a) == argmax(b);
  }
  for (std::size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, double(std::abs(got[i] - ref[i])));
    mag = std::max(mag, double(std::abs(ref[i])));
  }
  return {double(same) / double(n), err / mag};
}

}  // namespace

int accuracy_benchmark(int argc, char** argv) {
  cli::Options o("bench accuracy", "[options]",
                 "Top-1 agreement with f32 of the f16, bf16, int8 and int4 formats, teacher-forced over 512\n"
                 "positions of real text, for the demo LLM and a random llama-160m-shape model (its text is\n"
                 "tokenized with --tokenizer, the LLaMA tokenizer, when given; random token ids otherwise).");
  o.add("--models", "LIST", "demo, random-160m, or model folders", "demo,random-160m");
  o.add("--tokenizer", "FILE", "LLaMA tokenizer.model for the random-160m text");
  o.add("--positions", "N", "predicted positions", "512");
  o.add("--out", "FILE", "JSON result file", "bench-accuracy.json");
  if (!o.parse(argc, argv)) return 0;
  const int positions = o.integer("--positions");
  auto backend = cpu::make_cpu_backend({});
  nlohmann::json rows = nlohmann::json::array();
  std::printf("%-22s %-6s | %14s %16s\n", "model", "dtype", "top-1 vs f32", "max rel. error");
  for (const auto& name : o.list("--models")) {
    std::unique_ptr<WeightSource> source;
    std::filesystem::path tokenizer;
    if (name == "random-160m") {
      source = std::make_unique<RandomWeights>(llama_160m_shape(), 1);
      if (o.has("--tokenizer")) tokenizer = o.text("--tokenizer");
    } else {
      const std::filesystem::path dir = name == "demo" ? models_dir() / "demo-llm" : std::filesystem::path(name);
      if (!std::filesystem::exists(dir)) {
        std::printf("skipping %s: %s is missing\n", name.c_str(), dir.c_str());
        continue;
      }
      source = open_weights(dir);
      tokenizer = dir / "tokenizer.model";
    }
    const auto& c = source->config();
    std::vector<std::int32_t> tokens;
    std::string text_kind = "random token ids";
    if (!tokenizer.empty()) {
      tokens = Tokenizer(tokenizer, c.bos_token_id, c.eos_token_id).encode(kStories);
      text_kind = "stories";
    }
    for (Rng rng(3); int(tokens.size()) < positions + 1;) tokens.push_back(std::int32_t(3 + rng.next() % std::uint64_t(c.vocab_size - 3)));
    tokens.resize(std::size_t(positions) + 1);

    LlamaModel reference(*source, *backend, {WeightFormat::f32});
    const auto ref = teacher_forced_logits(reference, tokens);
    for (WeightFormat f : {WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4}) {
      LlamaModel model(*source, *backend, {f});
      const Comparison cmp = compare(teacher_forced_logits(model, tokens), ref, c.vocab_size);
      std::printf("%-22s %-6s | %13.2f%% %16.2e\n", name.c_str(), std::string(format_name(f)).c_str(),
                  100 * cmp.top1_agreement, cmp.relative_error);
      rows.push_back({{"model", name}, {"text", text_kind}, {"dtype", format_name(f)}, {"positions", positions},
                      {"top1_agreement", cmp.top1_agreement}, {"max_relative_logit_error", cmp.relative_error}});
    }
  }
  write_json(o.text("--out"), {{"machine", machine_description()}, {"rows", rows}});
  return 0;
}

}  // namespace banyan::bench
