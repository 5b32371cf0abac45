#pragma once
// The values Banyan's actors exchange, as plain structs: code that must not compile CAF (the
// gateway, compute) uses them from here; actors/messages.hpp adds their `inspect` and the atoms.
#include <cstdint>
#include <string>
#include <vector>

#include "model/forward_batch.hpp"
#include "model/kv_layout.hpp"

namespace banyan::actors {

// One generation, as a client asks for it (token ids: the gateway tokenizes).
struct GenerateRequest {
  std::vector<std::int32_t> prompt;
  std::int32_t max_new_tokens = 128;
  float temperature = 0;  // 0: greedy
  float top_p = 1;
  std::int32_t top_k = 0;
  std::uint64_t seed = 0;
  bool speculate = true;  // false: incremental decoding even when the model has SSMs
};

// A generation asked in text, as remote clients do: the server tokenizes. `params.prompt` is
// ignored.
struct TextGenerateRequest {
  std::string prompt;
  GenerateRequest params;
};

// Tokens one scheduler step committed for one request.
struct TokenChunk {
  std::uint64_t request = 0;
  std::vector<std::int32_t> tokens;
};

// The same tokens with their text (whole UTF-8 characters; a character split over steps comes
// with the step that completes it), as remote clients receive them.
struct TextChunk {
  std::uint64_t request = 0;
  std::string text;
  std::vector<std::int32_t> tokens;
};

// What one engine step committed, as the step worker reports it to the scheduler.
struct StepResult {
  std::vector<TokenChunk> chunks;
  std::string error;  // the step threw: its requests fail with this reason
};

// KV rows to move within one slot, every layer (an accepted tree path compacted into place).
struct KvMoves {
  std::int32_t slot = 0;
  std::vector<std::int32_t> from, to;
  std::vector<std::int32_t> blocks;  // the slot's block table in a paged cache
};

// Bulk floats that travel over the data plane (actors/transport) instead of inside a message
// between two processes: the tag the activations were sent with, and where the logits go. The
// first link with a data plane sets the reply to its own process, the one that waits for the
// logits; links after it keep it, so the last stage's process sends them there directly rather
// than back along the chain of processes.
struct BulkRef {
  std::uint64_t tag = 0;  // the activations came with it; 0: inside the message, or none (a first stage)
  std::string reply_host;  // the data plane that waits for the logits
  std::int32_t reply_port = 0;
  std::uint64_t reply_instance = 0;  // which data plane there (actors/bulk.hpp)
  std::uint64_t reply_tag = 0;       // what to tag the logits with; 0: answer them inside the message
};

// One forward pass on its way down the LLM's pipeline: the batch, the activations the previous
// stage produced (none for the first), and the KV moves every stage applies before computing.
struct StageForward {
  ForwardBatch batch;
  std::vector<float> activations;
  std::vector<KvMoves> kv_moves;
  BulkRef bulk;  // set between processes with data planes: the activations come that way
  // Set by a stage whose tensor shards are spread over processes, for its shards elsewhere:
  // the number its collectives tag this pass with (Collective::begin_round).
  std::uint64_t round = 0;
};

// What the last stage answers: the logits of batch.logit_rows.
struct StageLogits {
  std::vector<float> logits;
  std::uint64_t bulk_tag = 0;  // not 0: the logits went over the data plane with this tag (BulkRef::reply_tag)
};

// The end of a request: why it ended and what it cost.
struct RequestDone {
  std::uint64_t request = 0;
  std::string finish_reason;  // stop, length, cancelled, error
  std::string error;          // why it failed, when it did
  std::int32_t prompt_tokens = 0;
  std::int32_t cached_prompt_tokens = 0;  // found in the prefix cache
  std::int32_t generated_tokens = 0;
  std::int32_t llm_steps = 0;
  double accepted_per_step = 0;
};

}  // namespace banyan::actors
