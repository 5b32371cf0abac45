#pragma once
// The single-process serving loop: a RequestManager decides each step, the LLM and the SSMs
// execute it. With SSMs, every decoding request sends a token tree that the LLM verifies in one
// pass (SpecInfer); without, it sends its last token (incremental decoding). Prompts are
// prefilled in chunks alongside the decoding requests (continuous batching).
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "engine/llm_runner.hpp"
#include "engine/speculation_policy.hpp"
#include "engine/ssm_group.hpp"
#include "model/llama_model.hpp"
#include "scheduler/request_manager.hpp"
#include "scheduler/tree_expansion.hpp"

namespace banyan {

struct EngineOptions {
  SchedulerLimits limits;
  TreeShape tree;  // per SSM
  // With SSMs: each step's trees are of the size that measured fastest, none where
  // incremental decoding did (SpeculationPolicy); off, every step grows the whole tree.
  bool adaptive_speculation = true;
};

struct EngineStats {
  int steps = 0;
  double llm_seconds = 0;
  double ssm_seconds = 0;  // waiting for the SSMs' trees
  long long llm_tokens = 0;        // tokens sent through the LLM (prefill + roots + trees)
  long long committed_tokens = 0;  // generated tokens kept
  int speculative_steps = 0;       // steps that ran the SSMs' trees
};

class Engine {
 public:
  // Every SSM must share the LLM's vocabulary; none means incremental decoding.
  Engine(LlamaModel& llm, std::vector<LlamaModel*> ssms, EngineOptions options);
  // The same with the models run elsewhere (stage and SSM actors); both must outlive the engine.
  Engine(LlmRunner& llm, SsmGroup& ssms, EngineOptions options);
  ~Engine();

  RequestId submit(std::vector<std::int32_t> prompt, const GenerationConfig& config);
  bool cancel(RequestId id);

  // Committed tokens, as soon as a step has decided them: (request, tokens).
  using TokenSink = std::function<void(RequestId, std::span<const std::int32_t>)>;
  // Runs one step. Returns false when there was nothing to do.
  bool step(const TokenSink& sink);
  // Steps until every submitted request is done.
  void run(const TokenSink& sink);

  RequestManager& requests() { return manager_; }
  const EngineStats& stats() const { return stats_; }
  SpeculationPolicy& speculation_policy() { return policy_; }
  bool speculative() const { return ssms_.size() > 0; }

 private:
  struct Runtime;  // per-request random streams and what the SSMs have seen
  // Drives `llm` and `ssms`, or where null the runners it owns (the local constructor's).
  Engine(std::unique_ptr<LlmRunner> own_llm, std::unique_ptr<SsmGroup> own_ssms, LlmRunner* llm, SsmGroup* ssms,
         EngineOptions options);
  Runtime& runtime(RequestId id);
  // Every SSM expands each decode entry's tree (and takes in the prompt chunks); returns the
  // merged tree per entry, or the bare root when this step does not speculate.
  std::vector<TokenTree> propose(const StepPlan& plan, bool speculate);
  SsmWork ssm_work(const StepPlan& plan);
  // The LLM's logits for every tree node and completed prompt; summarised where they are formed
  // when every request in the step needs only its rows' best tokens (SummaryWidth).
  LogitRows run_llm(const StepPlan& plan, const std::vector<TokenTree>& trees);
  // Verifies one entry's tree against the LLM logits from `row` on; commits and compacts.
  void commit_decode(const StepPlan& plan, std::size_t entry, const TokenTree& tree, const LogitRows& logits,
                     std::size_t row, bool speculated, const TokenSink& sink);
  // The first generated token of a prompt whose prefill ended, from the logits at `row`.
  void commit_first_token(const PrefillChunk& chunk, const LogitRows& logits, std::size_t row, const TokenSink& sink);
  void retire_done();
  // The slot's block table in a paged KV cache (empty: not paged).
  std::vector<std::int32_t> kv_blocks(int slot) const;

  std::unique_ptr<LlmRunner> own_llm_;
  std::unique_ptr<SsmGroup> own_ssms_;
  LlmRunner& llm_;
  SsmGroup& ssms_;
  std::vector<SsmCommit> ssm_commits_;  // the last step's, sent with the next SSM work
  std::vector<int> moved_slots_;        // this step's slots whose request is new to them
  EngineOptions options_;
  RequestManager manager_;
  std::map<RequestId, std::unique_ptr<Runtime>> runtimes_;
  std::vector<float> logits_;
  EngineStats stats_;
  SpeculationPolicy policy_;
  bool last_step_speculated_ = true;  // of the last step that decoded
};

}  // namespace banyan
