// banyan generate: load an LLM (and SSMs), generate from one prompt or a file of prompts with
// speculative or incremental decoding, stream the text.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/model_setup.hpp"
#include "cli/option_types.hpp"
#include "cli/process_memory.hpp"
#include "engine/engine.hpp"
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

EngineOptions engine_options(const Options& o) {
  EngineOptions e;
  e.limits.max_requests_per_batch = o.integer("--max-requests-per-batch");
  e.limits.max_tokens_per_batch = o.integer("--max-tokens-per-batch");
  e.limits.max_sequence_length = o.integer("--max-sequence-length");
  e.limits.max_tree_tokens = o.integer("--max-tree-tokens");
  e.limits.kv_cache_tokens = o.integer("--kv-cache-tokens");
  e.limits.kv_block_rows = o.integer("--kv-block-rows");
  e.limits.kv_prefix_caching = !o.has("--no-prefix-cache");
  e.tree.width = o.integer("--tree-width");
  e.tree.depth = o.integer("--tree-depth");
  if (e.tree.width < 1 || e.tree.depth < 0) throw UsageError("--tree-width must be >= 1 and --tree-depth >= 0");
  return e;
}

std::string histogram(const std::map<int, int>& h) {
  std::string s;
  for (const auto& [accepted, steps] : h) {
    s += ' ';  // appended piece by piece: `" " + to_string(...)` trips GCC 12's -Wrestrict (bug 105329)
    s += std::to_string(accepted);
    s += ':';
    s += std::to_string(steps);
  }
  return s;
}

}  // namespace

int generate_command(int argc, char** argv) {
  Options o("generate", "[--model PATH] [--ssm PATH]... [--prompt TEXT | --prompt-file FILE] [options]",
            "Generates text and streams it to stdout as it is made; a summary goes to stderr. With one or more\n"
            "SSMs it runs tree-based speculative inference (greedy output identical to incremental decoding,\n"
            "sampled output with the LLM's distribution).");
  add_model_options(o);
  add_generation_options(o);
  o.add("--prompt-file", "FILE", "a JSON list of prompt strings, served together with continuous batching");
  o.add("--tree-width", "W", "beams (greedy) or sampled chains per SSM", std::to_string(TreeShape{}.width));
  o.add("--tree-depth", "D", "speculated tokens along each beam", std::to_string(TreeShape{}.depth));
  o.add("--max-tree-tokens", "N", "speculated tokens per request per step (at most 63)", "63");
  o.add("--max-sequence-length", "N", "prompt + generated tokens (0: the model's maximum)", "0");
  o.add("--max-requests-per-batch", "N", "requests served at once", "8");
  o.add("--max-tokens-per-batch", "N", "tokens per LLM pass (prefill chunks + trees)", "512");
  o.add("--kv-cache-tokens", "N", "the LLM's KV cache: N tokens for all requests together (0: a whole sequence each)", "0");
  o.add("--kv-block-rows", "N", "tokens per block of the paged KV cache (0: not paged)", "16");
  o.flag("--no-prefix-cache", "paged: compute every prompt whole, even where another's blocks hold its start");
  o.flag("--ids", "print only the generated token ids, space-separated, one line per prompt");
  o.flag("--stats", "print per-request statistics to stderr");
  if (!o.parse(argc, argv)) return 0;
  if (!o.positional().empty()) throw UsageError("unexpected argument '" + o.positional()[0] + "'");

  const auto prompts = o.has("--prompt-file") ? read_prompt_file(o.text("--prompt-file"))
                                              : std::vector<std::string>{o.text("--prompt")};
  std::string mode;
  const GenerationConfig config = generation_option_values(o, ssm_paths(o).empty() ? "incremental" : "speculative", mode);
  if (mode == "speculative" && ssm_paths(o).empty()) throw UsageError("--mode speculative needs at least one --ssm");

  LoadedModels m = load_models(o, mode == "speculative");
  std::vector<LlamaModel*> ssms;
  for (auto& s : m.weights->ssms) ssms.push_back(s.get());
  Engine engine(*m.weights->llm, ssms, engine_options(o));
  std::cerr << "banyan: KV cache: " << engine.requests().limits().describe_kv_cache() << "\n";

  std::vector<RequestId> ids;
  std::size_t prompt_tokens = 0;
  for (const auto& text : prompts) {
    auto tokens = m.tokenizer->encode(text);
    prompt_tokens += tokens.size();
    ids.push_back(engine.submit(std::move(tokens), config));
    const Request& r = engine.requests().request(ids.back());
    if (r.state == RequestState::failed) throw Error("prompt " + std::to_string(ids.size() - 1) + ": " + r.error);
  }

  const bool ids_only = o.has("--ids");
  const bool streaming = prompts.size() == 1 && !ids_only;
  StreamDecoder decoder(*m.tokenizer, StreamDecoder::Start::after_prompt);
  if (streaming) std::cout << prompts[0] << std::flush;
  const auto start = std::chrono::steady_clock::now();
  engine.run([&](RequestId, std::span<const std::int32_t> tokens) {
    if (!streaming) return;
    for (auto t : tokens) std::cout << decoder.push(t);
    std::cout << std::flush;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::size_t generated = 0;
  double ttft = 0;
  std::map<int, int> accepted_histogram;
  int llm_steps = 0, step_tokens = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const Request& r = engine.requests().request(ids[i]);
    const std::vector<std::int32_t> out(r.tokens.begin() + r.prompt_length, r.tokens.end());
    generated += out.size();
    ttft = std::max(ttft, r.stats.time_to_first_token_s);
    llm_steps += r.stats.llm_steps;
    for (int a : r.stats.accepted_per_step) ++accepted_histogram[a], step_tokens += a;
    if (ids_only) {
      for (std::size_t t = 0; t < out.size(); ++t) std::cout << (t ? " " : "") << out[t];
      std::cout << "\n";
    } else if (streaming) {
      std::cout << decoder.finish() << "\n";
    } else {
      std::cout << "=== [" << i << "] ===\n" << prompts[i] << generated_text(*m.tokenizer, out) << "\n";
    }
    if (o.has("--stats"))
      std::cerr << "banyan: request " << i << ": " << r.prompt_length << " prompt + " << out.size()
                << " generated tokens, finish " << finish_reason_name(r.finish) << ", " << r.stats.llm_steps
                << " LLM steps, " << r.stats.mean_accepted() << " tokens per step, "
                << (r.stats.llm_steps ? r.stats.tree_tokens / r.stats.llm_steps : 0) << " tree tokens per step, "
                << "first token after " << r.stats.time_to_first_token_s * 1000 << " ms"
                << (r.stats.preemptions ? ", preempted " + std::to_string(r.stats.preemptions) + "x" : "")
                << (r.stats.cached_prompt_tokens
                        ? ", " + std::to_string(r.stats.cached_prompt_tokens) + " prompt tokens from the prefix cache"
                        : "")
                << "\n";
  }
  std::cout << std::flush;

  char line[512];
  std::snprintf(line, sizeof line,
                "banyan: %zu prompt(s), %zu prompt tokens, %zu generated tokens in %.2f s (%.1f tokens/s), "
                "time to first token %.0f ms\n",
                prompts.size(), prompt_tokens, generated, seconds, seconds > 0 ? double(generated) / seconds : 0.0,
                ttft * 1000);
  std::cerr << line;
  const auto& st = engine.stats();
  if (engine.speculative()) {
    std::snprintf(line, sizeof line,
                  "banyan: speculative, %zu SSM(s), tree %dx%d: %.2f tokens per LLM step over %d steps; "
                  "LLM %.2f s, SSM %.2f s; accepted per step (tokens:steps)%s\n",
                  ssms.size(), o.integer("--tree-width"), o.integer("--tree-depth"),
                  llm_steps ? double(step_tokens) / llm_steps : 0.0, llm_steps, st.llm_seconds,
                  st.ssm_seconds, histogram(accepted_histogram).c_str());
    std::cerr << line;
  }
  if (o.has("--stats")) {
    std::cerr << "banyan: peak RSS " << (peak_rss_bytes() >> 20) << " MiB\n";
    if (!m.weights->pagings.empty()) {
      const OffloadStats s = m.weights->paging_stats();
      std::snprintf(line, sizeof line,
                    "banyan: offloaded LLM: %.1f MiB streamed per generated token, %.2f s of compute spent paging\n",
                    double(s.streamed_bytes) / (1 << 20) / double(std::max<std::size_t>(1, generated)), s.stall_seconds);
      std::cerr << line;
    }
  }
  return 0;
}

}  // namespace banyan::cli
