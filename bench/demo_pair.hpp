#pragma once
// The demo pair as the benchmarks use it: models/demo-llm (as trained, or widened to a larger
// shape that still decodes what it decodes) with models/demo-ssm, and the story openings as
// prompts in their tokenizer.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/weight_source.hpp"

namespace banyan::bench {

struct DemoPair {
  std::unique_ptr<WeightSource> llm, ssm;
  std::vector<std::vector<std::int32_t>> prompts;
};

// The story openings (story_text.hpp) in the tokenizer of the model folder `model`.
std::vector<std::vector<std::int32_t>> story_prompts(const std::filesystem::path& model, const LlamaConfig& config);

// True for the names open_demo_pair knows: "demo" and "demo-160m" (the LLM widened to
// llama-160m's size: hidden 768, intermediate 3072, 12 layers; 424 MB in f32, memory-bound).
bool is_demo_pair(const std::string& name);

// The pair called `name`; nullopt when the demo models are missing (a copy of the tree without
// models/).
std::optional<DemoPair> open_demo_pair(const std::string& name);

}  // namespace banyan::bench
