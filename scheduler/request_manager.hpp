#pragma once
// The request manager: admission, continuous batching and commitment, as pure logic. Each step
// it returns a StepPlan — which requests decode (with how many speculated tokens they may send)
// and which prompt chunks are prefilled — under three limits: requests in flight
// (max_requests_per_batch, one KV slot each), tokens per LLM pass (max_tokens_per_batch) and
// tokens per sequence (max_sequence_length). With a paged KV cache (the default) it also
// hands out the cache's blocks: a request is admitted when its prompt's blocks are free, and
// when a decoding request's next rows find none, the latest admitted request gives its blocks
// back and waits to be prefilled again (its prompt and the tokens it has so far). Whoever runs
// the models executes the plan and reports back with commit().
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/kv_layout.hpp"
#include "scheduler/kv_block_pool.hpp"
#include "scheduler/request.hpp"

namespace banyan {

struct SchedulerLimits {
  int max_requests_per_batch = 8;
  int max_tokens_per_batch = 512;
  int max_sequence_length = 0;  // 0: the model's max_position_embeddings (resolved by the engine)
  int max_tree_tokens = 63;  // speculated tokens per request per step (root not counted)
  // The LLM's KV cache holds this many tokens, all requests together, in blocks of
  // kv_block_rows (at least one whole sequence); 0: room for every slot's whole sequence.
  int kv_cache_tokens = 0;
  // 0: no paging, each slot a fixed run of rows (kv_cache_tokens must be 0 then).
  int kv_block_rows = 16;
  // Paged: a request whose first tokens are those of blocks other requests computed takes
  // those blocks instead of computing them again (kv_block_pool.hpp).
  bool kv_prefix_caching = true;

  void validate() const;  // throws Error
  // The KV cache's rows per sequence (room for one tree after it) and its paging.
  KvLayout kv_layout() const;
  // "8 slots of 517 tokens", "paged: 4096 tokens in 256 blocks of 16, ..., prefix caching".
  std::string describe_kv_cache() const;
};

struct PrefillChunk {
  RequestId id;
  int slot;
  int begin, end;        // tokens [begin, end) go to cache rows [begin, end)
  bool completes_prompt; // the LLM's logits at the last token give the first generated token
                         // (not when a preempted request's tokens come back)
};

struct DecodeEntry {
  RequestId id;
  int slot;
  int root_row;              // cache row of the root: the last committed token, not yet computed
  std::int32_t root_token;
  int tree_budget;           // speculated tokens this request may add after its root
};

struct StepPlan {
  std::vector<DecodeEntry> decode;
  std::vector<PrefillChunk> prefill;
  bool empty() const { return decode.empty() && prefill.empty(); }
  int tokens() const;  // roots + prefill tokens (tree tokens come on top, within their budgets)
};

class RequestManager {
 public:
  RequestManager(SchedulerLimits limits, int vocab_size, std::int32_t eos_token);

  // Queues a request. A prompt that can never run (empty, a token outside the vocabulary, not
  // shorter than max_sequence_length) fails at once with the reason; nothing else is disturbed.
  RequestId submit(std::vector<std::int32_t> prompt, const GenerationConfig& config);
  // Stops a request; its slot is free for the next step. False if it was already done.
  bool cancel(RequestId id);

  // Admits queued requests into free slots, then plans this step. `tree_tokens` (0: none)
  // reserves room in the token budget for every decoding request's tree of up to that many
  // tokens (and max_tree_tokens).
  StepPlan schedule(int tree_tokens);

  // Commits `accepted` tokens for a request (the first generated token after its prefill, or a
  // verify step's accepted tokens) and applies the stop rules: EOS (not kept), max_new_tokens,
  // max_sequence_length. Returns how many of the tokens were kept.
  int commit(RequestId id, std::span<const std::int32_t> accepted);
  // Marks a request failed (e.g. its node died); frees its slot.
  void fail(RequestId id, const std::string& why);
  // The paged KV cache's blocks; null without paging.
  const KvBlockPool* kv_blocks() const { return blocks_ ? &*blocks_ : nullptr; }
  long long preemptions() const { return preemptions_; }  // since the start
  // Tokens whose rows came from the prefix cache (prompts, and preempted requests' returns), since the start.
  long long cached_tokens() const { return cached_tokens_; }

  const Request& request(RequestId id) const;
  Request& request(RequestId id);
  bool has_work() const;
  int active_count() const;
  int decoding_count() const;  // active requests past their prompt
  int queued_count() const { return int(queue_.size()); }
  const SchedulerLimits& limits() const { return limits_; }
  // Requests done (finished, failed, cancelled) since the last call, in the order they ended.
  std::vector<RequestId> take_done();
  // Forgets a done request.
  void erase(RequestId id);

 private:
  void end(Request& r, RequestState state, FinishReason reason);
  void admit();
  // Paged: every decoding request gets the row of its root, the latest admitted giving way.
  void make_room_for_roots();
  void preempt(Request& r);
  void free_slot(Request& r);

  SchedulerLimits limits_;
  int vocab_;
  std::int32_t eos_;
  RequestId next_id_ = 1;
  std::map<RequestId, Request> requests_;
  std::deque<RequestId> queue_;
  std::vector<RequestId> active_;     // admission order
  std::vector<bool> slot_used_;
  std::optional<KvBlockPool> blocks_;
  long long preemptions_ = 0;
  long long cached_tokens_ = 0;
  std::vector<RequestId> done_;
};

}  // namespace banyan
