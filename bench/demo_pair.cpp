#include "bench/demo_pair.hpp"

#include "bench/bench_util.hpp"
#include "bench/story_text.hpp"
#include "model/tokenizer.hpp"
#include "model/widened_weights.hpp"

namespace banyan::bench {

std::vector<std::vector<std::int32_t>> story_prompts(const std::filesystem::path& model, const LlamaConfig& config) {
  const Tokenizer tok(model / "tokenizer.model", config.bos_token_id, config.eos_token_id);
  std::vector<std::vector<std::int32_t>> prompts;
  for (const char* text : kStoryOpenings) prompts.push_back(tok.encode(text));
  return prompts;
}

bool is_demo_pair(const std::string& name) { return name == "demo" || name == "demo-160m"; }

std::optional<DemoPair> open_demo_pair(const std::string& name) {
  const std::filesystem::path llm = models_dir() / "demo-llm", ssm = models_dir() / "demo-ssm";
  if (!std::filesystem::exists(llm) || !std::filesystem::exists(ssm)) return std::nullopt;
  DemoPair p{open_weights(llm), open_weights(ssm), {}};
  p.prompts = story_prompts(llm, p.llm->config());
  // A trained LLM the size of llama-160m: memory-bound, with a trained SSM that agrees with it on
  // 88% of tokens (models/README.md).
  if (name == "demo-160m") p.llm = std::make_unique<WidenedWeights>(std::move(p.llm), WideShape{768, 3072, 12, 16, 4});
  return p;
}

}  // namespace banyan::bench
