#pragma once
// Plain (incremental) generation in one process: each group of prompts is prefilled in
// batched passes, then decoded together one token per sequence per step.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/llama_model.hpp"
#include "model/sampler.hpp"

namespace banyan {

struct GenerationRequest {
  std::vector<std::int32_t> prompt;  // BOS included when the model wants one
  int max_new_tokens = 128;
  SamplingParams sampling;
};

enum class FinishReason { eos, length };
std::string_view finish_reason_name(FinishReason r);

struct GenerationResult {
  std::vector<std::int32_t> tokens;  // generated ids, EOS excluded
  FinishReason finish = FinishReason::length;
  double time_to_first_token_s = 0;
};

struct GenerationLimits {
  int max_requests_per_batch = 8;
  int max_tokens_per_batch = 512;  // prefill is chunked to this many tokens per pass
  int max_sequence_length = 0;     // prompt + generated; 0: the model's max_position_embeddings
};

class Generator {
 public:
  Generator(LlamaModel& model, GenerationLimits limits);

  // Called for every generated token as soon as it is known: (request index, token id).
  using TokenSink = std::function<void(std::size_t, std::int32_t)>;

  // Runs every request to completion. Throws Error naming the request when a prompt is empty
  // or cannot fit in max_sequence_length; nothing runs then.
  std::vector<GenerationResult> run(const std::vector<GenerationRequest>& requests, const TokenSink& on_token);

 private:
  void run_group(const std::vector<GenerationRequest>& requests, std::size_t first, std::size_t count,
                 const TokenSink& on_token, std::vector<GenerationResult>& results);

  LlamaModel& model_;
  GenerationLimits limits_;
  std::unique_ptr<KvCache> kv_;
  std::vector<float> logits_;
};

}  // namespace banyan
