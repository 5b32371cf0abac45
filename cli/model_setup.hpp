#pragma once
// What every command that runs a model shares: the options that pick the model, its tokenizer
// and the backend, and the loading of all three with progress on stderr.
#include <filesystem>
#include <memory>

#include "cli/options.hpp"
#include "model/llama_model.hpp"
#include "model/tokenizer.hpp"

namespace banyan::cli {

// Declares --model, --tokenizer, --device, --threads.
void add_model_options(Options& options);

// The model path from --model, or the embedded demo model.
std::filesystem::path model_path(const Options& options);

// --tokenizer, or tokenizer.model beside the weights.
std::filesystem::path tokenizer_path(const Options& options, const std::filesystem::path& model);

std::unique_ptr<Backend> make_backend(const Options& options);

struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  double load_seconds = 0;
};

// Loads everything --model/--tokenizer/--device/--threads name; throws Error with the file.
LoadedModel load_model(const Options& options);

}  // namespace banyan::cli
