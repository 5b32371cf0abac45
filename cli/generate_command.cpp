// banyan generate: load a model, generate from one prompt or a file of prompts, stream the text.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/model_setup.hpp"
#include "engine/generator.hpp"
#include "model/error.hpp"

namespace banyan::cli {

namespace {

// FlexFlow Serve's prompt-dataset format: a JSON list of strings.
std::vector<std::string> read_prompt_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open prompt file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_array() || j.empty()) throw Error(path + ": expected a non-empty JSON list of prompt strings");
  std::vector<std::string> prompts;
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) throw Error(path + ": entry " + std::to_string(i) + " is not a string");
    prompts.push_back(j[i].get<std::string>());
  }
  return prompts;
}

SamplingParams sampling_from(const Options& o) {
  SamplingParams p;
  p.temperature = float(o.number("--temperature"));
  p.top_p = float(o.number("--top-p"));
  p.top_k = o.integer("--top-k");
  p.seed = std::uint64_t(o.integer("--seed"));
  if (p.temperature < 0) throw UsageError("--temperature must be 0 (greedy) or more");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw UsageError("--top-p must be in (0, 1]");
  if (p.top_k < 0) throw UsageError("--top-k must be 0 (no limit) or more");
  return p;
}

}  // namespace

int generate_command(int argc, char** argv) {
  Options o("generate", "[--model PATH] (--prompt TEXT | --prompt-file FILE) [options]",
            "Generates text from a prompt and streams it to stdout as it is made; a summary line goes to stderr.");
  add_model_options(o);
  o.add("--prompt", "TEXT", "the prompt", "Once upon a time");
  o.add("--prompt-file", "FILE", "a JSON list of prompt strings, generated as one batch");
  o.add("--max-new-tokens", "N", "tokens to generate per prompt", "128");
  o.add("--temperature", "T", "sampling temperature; 0 is greedy", "0");
  o.add("--top-p", "P", "nucleus sampling mass", "1");
  o.add("--top-k", "K", "sample among the K most likely tokens (0: all)", "0");
  o.add("--seed", "N", "random seed: the same seed gives the same text", "0");
  o.add("--max-sequence-length", "N", "prompt + generated tokens (0: the model's maximum)", "0");
  o.add("--max-requests-per-batch", "N", "prompts decoded together", "8");
  o.add("--max-tokens-per-batch", "N", "tokens per forward pass while prefilling", "512");
  o.flag("--ids", "print only the generated token ids, space-separated, one line per prompt");
  if (!o.parse(argc, argv)) return 0;
  if (!o.positional().empty()) throw UsageError("unexpected argument '" + o.positional()[0] + "'");

  const auto prompts = o.has("--prompt-file") ? read_prompt_file(o.text("--prompt-file"))
                                              : std::vector<std::string>{o.text("--prompt")};
  const SamplingParams sampling = sampling_from(o);
  const int max_new = o.integer("--max-new-tokens");
  if (max_new < 0) throw UsageError("--max-new-tokens must not be negative");
  GenerationLimits limits{o.integer("--max-requests-per-batch"), o.integer("--max-tokens-per-batch"),
                          o.integer("--max-sequence-length")};

  LoadedModel m = load_model(o);
  std::vector<GenerationRequest> requests;
  std::size_t prompt_tokens = 0;
  for (const auto& text : prompts) {
    requests.push_back({m.tokenizer->encode(text), max_new, sampling});
    prompt_tokens += requests.back().prompt.size();
  }

  const bool ids_only = o.has("--ids");
  const bool streaming = prompts.size() == 1;
  StreamDecoder decoder(*m.tokenizer);
  if (streaming && !ids_only) std::cout << prompts[0] << std::flush;

  Generator generator(*m.model, limits);
  const auto start = std::chrono::steady_clock::now();
  auto results = generator.run(requests, [&](std::size_t, std::int32_t token) {
    if (streaming && !ids_only) std::cout << decoder.push(token) << std::flush;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::size_t generated = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    generated += results[i].tokens.size();
    if (ids_only) {
      for (std::size_t t = 0; t < results[i].tokens.size(); ++t) std::cout << (t ? " " : "") << results[i].tokens[t];
      std::cout << "\n";
    } else if (streaming) {
      std::cout << decoder.finish() << "\n";
    } else {
      std::cout << "=== [" << i << "] ===\n" << prompts[i] << m.tokenizer->decode(results[i].tokens) << "\n";
    }
  }
  std::cout << std::flush;

  double ttft = 0;
  for (const auto& r : results) ttft = std::max(ttft, r.time_to_first_token_s);
  char line[256];
  std::snprintf(line, sizeof line,
                "banyan: %zu prompt(s), %zu prompt tokens, %zu generated tokens in %.2f s (%.1f tokens/s), "
                "time to first token %.0f ms, finish %s\n",
                prompts.size(), prompt_tokens, generated, seconds, seconds > 0 ? double(generated) / seconds : 0.0,
                ttft * 1000, std::string(finish_reason_name(results.back().finish)).c_str());
  std::cerr << line;
  return 0;
}

}  // namespace banyan::cli
