#pragma once
// One generation request as the scheduler sees it: its tokens, its state and its statistics.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "model/sampler.hpp"

namespace banyan {

using RequestId = std::uint64_t;

struct GenerationConfig {
  int max_new_tokens = 128;
  SamplingParams sampling;
  bool speculate = true;  // false: this request decodes one token per step even when SSMs run
};

enum class RequestState { queued, prefilling, decoding, finished, failed, cancelled };
std::string_view state_name(RequestState s);

enum class FinishReason { none, stop, length, cancelled, error };
std::string_view finish_reason_name(FinishReason r);

inline std::ostream& operator<<(std::ostream& os, RequestState s) { return os << state_name(s); }
inline std::ostream& operator<<(std::ostream& os, FinishReason r) { return os << finish_reason_name(r); }

struct RequestStats {
  int llm_steps = 0;                     // verify (or decode) passes after the prefill
  std::vector<int> accepted_per_step;    // tokens committed by each of those passes
  std::vector<int> tree_depth_per_step;  // depth of each step's token tree (0: no speculation)
  int tree_tokens = 0;                   // speculated tokens sent to the LLM, summed over steps
  double time_to_first_token_s = 0;
  int preemptions = 0;                   // times its KV blocks were taken back for another's
  int cached_prompt_tokens = 0;          // of its prompt, found in the prefix cache

  double mean_accepted() const;
};

struct Request {
  RequestId id = 0;
  std::vector<std::int32_t> tokens;  // prompt, then committed generated tokens
  int prompt_length = 0;
  GenerationConfig config;
  RequestState state = RequestState::queued;
  FinishReason finish = FinishReason::none;
  std::string error;  // why it failed
  int slot = -1;      // KV-cache slot while active
  int prefilled = 0;  // tokens already scheduled into the KV cache by its prefill
  RequestStats stats;

  int generated() const { return int(tokens.size()) - prompt_length; }
  // Tokens its prefill puts in the KV cache: the prompt; after a preemption, every token but
  // the last (the root of its next decoding step).
  int prefill_length() const { return generated() > 0 ? int(tokens.size()) - 1 : prompt_length; }
  bool active() const { return state == RequestState::prefilling || state == RequestState::decoding; }
  bool done() const { return !active() && state != RequestState::queued; }
};

}  // namespace banyan
