#pragma once
// What the engine asks of one small speculative model (SSM) in one step, every input by value,
// so that the same request runs an SSM in this thread (LocalSsms) or in its own actor
// (actors/ssm): keep the accepted tokens of the last step, take in prompt chunks, then grow
// one candidate tree per decoding request. With a paged KV cache each part carries its slot's
// block table (the LLM's: the SSMs' caches have as many blocks, laid out alike); a commit, the
// one it had when its step ran.
#include <cstdint>
#include <vector>

#include "model/sampler.hpp"
#include "scheduler/token_tree.hpp"
#include "scheduler/tree_expansion.hpp"

namespace banyan {

// The last step's accepted tokens of the request in `slot` (root_row: that step's root).
struct SsmCommit {
  std::int32_t slot = 0;
  std::int32_t root_row = 0;
  std::vector<std::int32_t> accepted;
  std::vector<std::int32_t> blocks;
};

// A prompt chunk: tokens at positions [begin, begin + size). A chunk at 0 starts a new request.
struct SsmFeed {
  std::int32_t slot = 0;
  std::int32_t begin = 0;
  std::vector<std::int32_t> tokens;
  std::vector<std::int32_t> blocks;
};

// One decoding request's tree. `tokens` are its committed tokens at positions [first, root_row]
// (the root last): at least every one the SSM has not yet seen.
struct SsmJob {
  std::int32_t slot = 0;
  std::int32_t root_row = 0;
  std::int32_t first = 0;
  std::vector<std::int32_t> tokens;
  TreeShape shape;  // depth 0: no tree this step
  SamplingParams sampling;
  Rng rng;  // the request's draws for this SSM; the answer carries its state after them
  std::vector<std::int32_t> blocks;
};

struct SsmWork {
  std::vector<SsmCommit> commits;  // applied first
  std::vector<SsmFeed> prefill;
  std::vector<SsmJob> jobs;
};

// The answer: one tree and one Rng per job, in job order.
struct SsmTrees {
  std::vector<TokenTree> trees;
  std::vector<Rng> rngs;
};

}  // namespace banyan
