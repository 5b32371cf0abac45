#include "cli/model_setup.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>
#include <unistd.h>

#include "cli/option_types.hpp"
#include "engine/device_backend.hpp"
#include "model/error.hpp"
#include "model/tensor_shard_weights.hpp"
#include "model/weight_source.hpp"

namespace banyan::cli {

void add_model_options(Options& o) {
  o.add("--model", "PATH",
        "Hugging Face model folder (config.json + model.safetensors / pytorch_model.bin) or llama2.c .bin file",
        std::string(BANYAN_DEFAULT_MODEL));
  o.repeatable("--ssm", "PATH",
               "a small speculative model sharing the LLM's tokenizer; give several for several SSMs "
               "(default with the embedded model: its demo SSM)");
  o.add("--tokenizer", "FILE", "SentencePiece tokenizer.model (default: tokenizer.model beside the weights)");
  o.add("--dtype", "f32|f16|bf16|int8|int4", "format of the linear layers' weights", "f32");
  o.add("--ssm-dtype", "f32|f16|bf16|int8|int4", "format of the SSMs' linear layers (default: --dtype)");
  o.add("--kv-dtype", "f32|f16|bf16", "element type of the KV cache", "f32");
  o.add("--memory-budget", "MIB",
        "offload the LLM: at most MIB of its weights in memory at once, the rest streaming from its "
        "`banyan convert` file (default 0: all resident)");
  o.add("--offload-reserve", "MIB", "of the memory budget, MIB for streamed weights in flight (default: chosen)");
  o.add("--device", "cpu|cuda", "where the models run", "cpu");
  o.add("--threads", "N", "CPU threads (0: one per core)", "0");
}

std::filesystem::path model_path(const Options& o) {
  std::filesystem::path p = o.text("--model");
  if (!o.has("--model") && !std::filesystem::exists(p))
    throw Error("no --model given, and the embedded demo model " + p.string() + " is missing");
  return p;
}

std::vector<std::filesystem::path> ssm_paths(const Options& o) {
  std::vector<std::filesystem::path> paths;
  for (const auto& v : o.values("--ssm")) paths.emplace_back(v);
  if (paths.empty() && !o.has("--model") && std::filesystem::exists(BANYAN_DEFAULT_SSM)) paths.emplace_back(BANYAN_DEFAULT_SSM);
  return paths;
}

std::filesystem::path tokenizer_beside(const std::filesystem::path& model) {
  return (std::filesystem::is_directory(model) ? model : model.parent_path()) / "tokenizer.model";
}

std::filesystem::path tokenizer_path(const Options& o, const std::filesystem::path& model) {
  return o.has("--tokenizer") ? std::filesystem::path(o.text("--tokenizer")) : tokenizer_beside(model);
}

namespace {

ModelOptions model_options(const Options& o, bool ssm) {
  ModelOptions m;
  m.linear = format_option(o, ssm && o.has("--ssm-dtype") ? "--ssm-dtype" : "--dtype");
  m.kv_cache = parse_kv_dtype_value("--kv-dtype", o.text("--kv-dtype"));
  return m;
}

// The LLM's budget (SSMs are small: they stay resident).
PagingBudget paging_option(const Options& o) {
  const int budget = o.has("--memory-budget") ? o.integer("--memory-budget") : 0;
  const int reserve = o.has("--offload-reserve") ? o.integer("--offload-reserve") : 0;
  if (budget < 0 || reserve < 0) throw UsageError("--memory-budget and --offload-reserve must not be negative");
  if (reserve > 0 && budget == 0) throw UsageError("--offload-reserve needs --memory-budget");
  return {.budget = std::size_t(budget) << 20, .reserve = std::size_t(reserve) << 20};
}

std::unique_ptr<LlamaModel> load_one(const WeightSource& weights, Backend& backend, const ModelOptions& options,
                                     const std::string& role, LayerRange layers = {}) {
  const bool tty = ::isatty(STDERR_FILENO);
  const auto name = weights.origin().filename().string();
  std::cerr << "banyan: loading " << role << " " << weights.origin().string() << " (" << weights.config().summary()
            << ")" << (tty ? "" : "\n") << std::flush;
  auto model = std::make_unique<LlamaModel>(
      weights, backend, options,
      [&](int done, int total) {
        if (tty)
          std::cerr << "\rbanyan: loading " << role << " " << name << ": " << done << "/" << total << " tensors\033[K"
                    << std::flush;
      },
      layers);
  if (tty) std::cerr << "\r\033[K";
  // A `banyan convert` file's weights are used as it stores them.
  const auto stored = weights.read_encoded(hf_names::layer(layers.first, "mlp.up_proj.weight"));
  std::cerr << "banyan: " << role << " weights: " << double(model->weight_bytes()) / (1 << 20) << " MiB ("
            << format_name(stored ? stored->format : options.linear) << " linear layers)\n";
  return model;
}

// Pages what this process holds of the LLM (`models`, in layer order) under the one budget: the
// models of each backend under its share of it (tensor shards side by side: a backend each).
void page_llm(NodeWeights& m, const std::vector<LlamaModel*>& models, const PagingBudget& budget,
              const std::string& origin) {
  std::vector<std::vector<LlamaModel*>> groups;  // by backend, in the order first used
  for (LlamaModel* model : models) {
    auto same = std::find_if(groups.begin(), groups.end(),
                             [&](const auto& g) { return &g.front()->backend() == &model->backend(); });
    if (same == groups.end())
      groups.push_back({model});
    else
      same->push_back(model);
  }
  for (const auto& g : groups) {
    PagingBudget share = budget;
    share.budget = budget.budget * g.size() / models.size();
    share.reserve = budget.reserve * g.size() / models.size();
    try {
      m.pagings.push_back(page_models(g, share));
    } catch (const Error& e) {
      if (groups.size() == 1) throw;
      throw Error(std::string(e.what()) + " (each of the " + std::to_string(groups.size()) +
                  " tensor shards held here streams under its share of the budget)");
    }
  }
  m.budget = budget.budget;
  const OffloadStats s = m.paging_stats();
  std::cerr << "banyan: LLM offloaded: " << (s.resident_bytes >> 20) << " MiB resident, "
            << ((s.disk_bytes - s.resident_bytes) >> 20) << " MiB streaming from "
            << (s.host_bytes > 0 ? "pinned host memory" : origin) << " through " << (s.reserve_bytes >> 20)
            << " MiB (budget " << (budget.budget >> 20) << " MiB"
            << (groups.size() > 1 ? ", shared by " + std::to_string(groups.size()) + " shards" : "") << ")\n";
}

}  // namespace

ModelChoice model_choice(const Options& o, bool with_ssms) {
  ModelChoice c;
  c.llm = {model_path(o), model_options(o, false)};
  c.paging = paging_option(o);
  if (with_ssms)
    for (const auto& p : ssm_paths(o)) c.ssms.push_back({p, model_options(o, true)});
  c.tokenizer = tokenizer_path(o, c.llm.path);
  c.device = device_option(o);
  c.threads = o.integer("--threads");
  if (c.threads < 0) throw UsageError("--threads must be 0 or more");
  return c;
}

LoadedModels load_models(const ModelChoice& choice) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModels loaded;
  loaded.weights = std::make_shared<NodeWeights>();
  NodeWeights& m = *loaded.weights;
  m.backend = make_backend(choice.device, choice.threads);
  auto weights = open_model_or_first_shard(choice.llm.path, choice.tensor_shards);
  const auto& c = weights->config();
  loaded.llm_config = c;
  loaded.tokenizer = std::make_unique<Tokenizer>(choice.tokenizer, c.bos_token_id, c.eos_token_id);
  if (loaded.tokenizer->vocab_size() > c.vocab_size)
    throw Error(choice.tokenizer.string() + ": the tokenizer has " + std::to_string(loaded.tokenizer->vocab_size()) +
                " pieces but the model's vocabulary is only " + std::to_string(c.vocab_size));
  std::vector<LlamaModel*> llm_models;  // what this process holds of the LLM, in layer order
  std::string streamed_from = weights->origin().string();  // where offloaded weights stream from
  ModelOptions llm_options = choice.llm.options;
  llm_options.offload = choice.paging.budget > 0;
  if (choice.pipeline_stages > 1 || choice.tensor_shards > 1 || choice.stages) {
    std::vector<StageLoad> stages;
    if (choice.stages)
      stages = *choice.stages;
    else
      for (const LayerRange& r : split_layers(c.num_hidden_layers, choice.pipeline_stages)) stages.push_back({.layers = r});
    ModelOptions stage = llm_options;
    const int degree = choice.tensor_shards;
    const auto held = [&](const StageLoad& s) { return s.shards > 0 ? s.shards : degree; };
    int most_held = 1;
    for (const auto& s : stages) most_held = std::max(most_held, held(s));
    if (most_held > 1) {  // the shards of a stage held here compute side by side
      const int threads = choice.threads > 0 ? choice.threads : int(std::max(1u, std::thread::hardware_concurrency()));
      m.shards = make_shard_backends(choice.device, threads, most_held);
      std::cerr << "banyan: " << m.shards.description << "\n";
    }
    for (const StageLoad& s : stages) {
      // A stage held whole here sums its shards as make_shard_backends chose (shared memory, or
      // NCCL between GPUs); one spread over nodes brings its own collectives (cli/cluster_node:
      // stage_loads).
      const auto collectives = s.shards > 0 ? s.collectives
                               : degree > 1 ? m.shards.collectives()
                                            : std::vector<std::shared_ptr<Collective>>{};
      m.llm_stages.push_back(sharded_stage(s.first_rank, degree, collectives, [&](TensorShard shard) {
        stage.shard = shard;
        const std::string of = degree > 1 ? ", " + shard_text(shard) : "";
        Backend& backend = most_held > 1 ? *m.shards.backends[std::size_t(shard.rank - s.first_rank)] : *m.backend;
        const std::unique_ptr<WeightSource> own = open_shard_file(choice.llm.path, shard);  // else cut from the whole
        if (own) streamed_from = "the tensor shards' own files (" + own->origin().filename().string() + ", ...)";
        std::shared_ptr<LlamaModel> model =
            load_one(own ? *own : *weights, backend, stage, "LLM stage (" + layers_text(s.layers) + of + ")", s.layers);
        llm_models.push_back(model.get());
        return model;
      }));
    }
  } else {
    m.llm = load_one(*weights, *m.backend, llm_options, "LLM");
    llm_models.push_back(m.llm.get());
  }
  if (choice.paging.budget > 0) page_llm(m, llm_models, choice.paging, streamed_from);
  for (const auto& s : choice.ssms) m.ssms.push_back(load_one(*open_weights(s.path), *m.backend, s.options, "SSM"));
  loaded.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::size_t models = m.llm_models().size() + m.ssms.size();
  std::cerr << "banyan: loaded " << models << " model(s) on " << m.backend->name() << " in " << loaded.load_seconds << " s\n";
  return loaded;
}

LoadedModels load_models(const Options& o, bool with_ssms) { return load_models(model_choice(o, with_ssms)); }

}  // namespace banyan::cli
