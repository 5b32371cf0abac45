#pragma once
// What every command that runs a model shares: the options that pick the LLM, its SSMs, the
// tokenizer and the backend, and loading them all with progress on stderr.
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "cli/options.hpp"
#include "engine/node_weights.hpp"
#include "model/tokenizer.hpp"

namespace banyan::cli {

// Declares --model, --ssm, --tokenizer, --device, --threads.
void add_model_options(Options& options);

// --model, or the embedded demo model.
std::filesystem::path model_path(const Options& options);
// --ssm (any number), or the embedded demo SSM when the embedded demo model is used.
std::vector<std::filesystem::path> ssm_paths(const Options& options);
// tokenizer.model beside the weights (in the model folder, or beside a single-file model).
std::filesystem::path tokenizer_beside(const std::filesystem::path& model);
// --tokenizer, or tokenizer.model beside the weights.
std::filesystem::path tokenizer_path(const Options& options, const std::filesystem::path& model);

// One pipeline stage of the LLM to load here: its layers and, when other processes hold some of
// its tensor shards, which ones.
struct StageLoad {
  LayerRange layers;
  int first_rank = 0;
  int shards = 0;  // 0: all of ModelChoice::tensor_shards, summing in shared memory
  // With `shards`: how each sums with the others (Collective), one per shard held here.
  std::vector<std::shared_ptr<Collective>> collectives;
};

// What to load and where to run it, from the options or from a serving config.
struct ModelChoice {
  struct Model {
    std::filesystem::path path;
    ModelOptions options;
  };
  Model llm;
  PagingBudget paging;  // budget > 0: the LLM is offloaded (what this process holds of it, under one budget)
  std::vector<Model> ssms;
  std::filesystem::path tokenizer;
  std::string device = "cpu";
  int threads = 0;
  int pipeline_stages = 1;  // more: the LLM is loaded as that many layer ranges (llm_stages)
  int tensor_shards = 1;    // more: each stage is split into that many tensor shards (llm_stages)
  // Set: the LLM is loaded as exactly these stages (llm_stages, maybe none): other processes
  // hold the rest.
  std::optional<std::vector<StageLoad>> stages;
};
// The choice the options make; SSMs only when `with_ssms`.
ModelChoice model_choice(const Options& options, bool with_ssms);

struct LoadedModels {
  std::shared_ptr<NodeWeights> weights;  // a server's memory actor owns them
  LlamaConfig llm_config;
  std::unique_ptr<Tokenizer> tokenizer;
  double load_seconds = 0;
};

// Loads the LLM, its tokenizer and the SSMs; throws Error naming the file.
LoadedModels load_models(const ModelChoice& choice);
LoadedModels load_models(const Options& options, bool with_ssms);

}  // namespace banyan::cli
