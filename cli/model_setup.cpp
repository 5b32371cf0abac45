#include "cli/model_setup.hpp"

#include <chrono>
#include <iostream>
#include <unistd.h>

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
  o.add("--tokenizer", "FILE", "SentencePiece tokenizer.model (default: tokenizer.model beside the weights)");
  o.add("--device", "cpu|cuda", "where the model runs", "cpu");
  o.add("--threads", "N", "CPU threads (0: one per core)", "0");
}

std::filesystem::path model_path(const Options& o) {
  std::filesystem::path p = o.text("--model");
  if (!o.has("--model") && !std::filesystem::exists(p))
    throw Error("no --model given, and the embedded demo model " + p.string() + " is missing");
  return p;
}

std::filesystem::path tokenizer_path(const Options& o, const std::filesystem::path& model) {
  if (o.has("--tokenizer")) return o.text("--tokenizer");
  const auto dir = std::filesystem::is_directory(model) ? model : model.parent_path();
  return dir / "tokenizer.model";
}

std::unique_ptr<Backend> make_backend(const Options& o) {
  const std::string device = o.text("--device");
  const int threads = o.integer("--threads");
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

LoadedModel load_model(const Options& o) {
  const auto start = std::chrono::steady_clock::now();
  const auto path = model_path(o);
  LoadedModel m;
  m.backend = make_backend(o);
  auto weights = open_weights(path);
  const auto& c = weights->config();
  m.tokenizer = std::make_unique<Tokenizer>(tokenizer_path(o, path), c.bos_token_id, c.eos_token_id);
  if (m.tokenizer->vocab_size() > c.vocab_size)
    throw Error(tokenizer_path(o, path).string() + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
                " pieces but the model's vocabulary is only " + std::to_string(c.vocab_size));

  const bool tty = ::isatty(STDERR_FILENO);
  std::cerr << "banyan: loading " << path.string() << " (" << c.summary() << ") on " << m.backend->name()
            << (tty ? "" : "\n") << std::flush;
  m.model = std::make_unique<LlamaModel>(*weights, *m.backend, [&](int done, int total) {
    if (tty) std::cerr << "\rbanyan: loading " << path.filename().string() << ": " << done << "/" << total << " tensors   " << std::flush;
  });
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tty) std::cerr << "\r\033[K";
  std::cerr << "banyan: loaded " << path.filename().string() << " in " << m.load_seconds << " s\n";
  return m;
}

}  // namespace banyan::cli
