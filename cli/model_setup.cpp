#include "cli/model_setup.hpp"

#include <chrono>
#include <iostream>
#include <unistd.h>

#include "cli/option_types.hpp"
#include "cpu/cpu_backend.hpp"
#include "model/error.hpp"
#include "model/weight_source.hpp"
#ifdef BANYAN_WITH_CUDA
#include "gpu/cuda_backend.hpp"
#endif

namespace banyan::cli {

void add_model_options(Options& o) {
  o.add("--model", "PATH",
        "Hugging Face model folder (config.json + model.safetensors / pytorch_model.bin) or llama2.c .bin file",
        std::string(BANYAN_DEFAULT_MODEL));
  o.repeatable("--ssm", "PATH",
               "a small speculative model sharing the LLM's tokenizer; give several for several SSMs "
               "(default with the embedded model: its demo SSM)");
  o.add("--tokenizer", "FILE", "SentencePiece tokenizer.model (default: tokenizer.model beside the weights)");
  o.add("--dtype", "f32|f16|int8|int4", "format of the linear layers' weights", "f32");
  o.add("--ssm-dtype", "f32|f16|int8|int4", "format of the SSMs' linear layers (default: --dtype)");
  o.add("--kv-dtype", "f32|f16", "element type of the KV cache", "f32");
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

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (threads < 0) throw UsageError("--threads must be 0 or more");
  if (device == "cpu") return cpu::make_cpu_backend({threads});
  if (device == "cuda") {
#ifdef BANYAN_WITH_CUDA
    return gpu::make_cuda_backend();
#else
    throw Error("--device cuda: this build of banyan has no CUDA backend (configure with -DBANYAN_CUDA=ON)");
#endif
  }
  throw UsageError("--device must be 'cpu' or 'cuda', got '" + device + "'");
}

namespace {

ModelOptions model_options(const Options& o, bool ssm) {
  ModelOptions m;
  m.linear = format_option(o, ssm && o.has("--ssm-dtype") ? "--ssm-dtype" : "--dtype");
  const std::string kv = o.text("--kv-dtype");
  if (kv != "f32" && kv != "f16") throw UsageError("--kv-dtype must be f32 or f16, got '" + kv + "'");
  m.kv_cache = kv == "f16" ? DType::f16 : DType::f32;
  return m;
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
  std::cerr << "banyan: " << role << " weights: " << double(model->weight_bytes()) / (1 << 20) << " MiB ("
            << format_name(options.linear) << " linear layers)\n";
  return model;
}

}  // namespace

ModelChoice model_choice(const Options& o, bool with_ssms) {
  ModelChoice c;
  c.llm = {model_path(o), model_options(o, false)};
  if (with_ssms)
    for (const auto& p : ssm_paths(o)) c.ssms.push_back({p, model_options(o, true)});
  c.tokenizer = tokenizer_path(o, c.llm.path);
  c.device = o.text("--device");
  c.threads = o.integer("--threads");
  return c;
}

LoadedModels load_models(const ModelChoice& choice) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModels m;
  m.backend = make_backend(choice.device, choice.threads);
  auto weights = open_weights(choice.llm.path);
  const auto& c = weights->config();
  m.tokenizer = std::make_unique<Tokenizer>(choice.tokenizer, c.bos_token_id, c.eos_token_id);
  if (m.tokenizer->vocab_size() > c.vocab_size)
    throw Error(choice.tokenizer.string() + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
                " pieces but the model's vocabulary is only " + std::to_string(c.vocab_size));
  if (choice.pipeline_stages > 1) {
    for (const LayerRange& r : split_layers(c.num_hidden_layers, choice.pipeline_stages))
      m.llm_stages.push_back(load_one(*weights, *m.backend, choice.llm.options,
                                      "LLM stage (layers " + std::to_string(r.first) + "-" + std::to_string(r.end - 1) + ")", r));
  } else {
    m.llm = load_one(*weights, *m.backend, choice.llm.options, "LLM");
  }
  for (const auto& s : choice.ssms) m.ssms.push_back(load_one(*open_weights(s.path), *m.backend, s.options, "SSM"));
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "banyan: loaded " << std::max<std::size_t>(1, m.llm_stages.size()) + m.ssms.size() << " model(s) on " << m.backend->name() << " in "
            << m.load_seconds << " s\n";
  return m;
}

LoadedModels load_models(const Options& o, bool with_ssms) { return load_models(model_choice(o, with_ssms)); }

}  // namespace banyan::cli
