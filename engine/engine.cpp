#include "engine/engine.hpp"

#include <chrono>

#include "model/error.hpp"
#include "scheduler/tree_batch.hpp"
#include "scheduler/verification.hpp"

namespace banyan {

namespace {

// Fills in what depends on the models: the sequence limit defaults to the LLM's context, and
// the scheduler need not reserve room for more tree tokens than the SSMs can propose.
EngineOptions resolved(EngineOptions o, const LlamaConfig& llm, std::size_t ssms) {
  const int context = llm.max_position_embeddings;
  if (o.limits.max_sequence_length == 0) o.limits.max_sequence_length = context;
  if (o.limits.max_sequence_length > context)
    throw Error("max_sequence_length " + std::to_string(o.limits.max_sequence_length) +
                " exceeds the model's max_position_embeddings " + std::to_string(context));
  o.limits.max_tree_tokens = std::min(o.limits.max_tree_tokens, int(ssms) * o.tree.width * o.tree.depth);
  return o;
}

}  // namespace

struct Engine::Runtime {
  Rng verify;               // acceptance tests and samples of the LLM's distribution
  std::vector<Rng> drafts;  // each SSM's draws, independent of each other and of the acceptance tests
  int ssm_from = 0;         // the SSMs have seen the request's tokens before this position
  int slot = -1;            // the KV slot they know it by
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
  Runtime(std::uint64_t seed, int ssms) : verify(seed) {
    for (int i = 0; i < ssms; ++i) drafts.emplace_back(seed ^ (0x5851f42d4c957f2dull + std::uint64_t(i) * 0x9e3779b97f4a7c15ull));
  }
};

Engine::Engine(LlamaModel& llm, std::vector<LlamaModel*> ssms, EngineOptions options)
    : Engine(std::make_unique<LocalLlm>(llm), std::make_unique<LocalSsms>(ssms), nullptr, nullptr, options) {}

Engine::Engine(LlmRunner& llm, SsmGroup& ssms, EngineOptions options) : Engine(nullptr, nullptr, &llm, &ssms, options) {}

Engine::Engine(std::unique_ptr<LlmRunner> own_llm, std::unique_ptr<SsmGroup> own_ssms, LlmRunner* llm, SsmGroup* ssms,
               EngineOptions options)
    : own_llm_(std::move(own_llm)), own_ssms_(std::move(own_ssms)), llm_(llm ? *llm : *own_llm_),
      ssms_(ssms ? *ssms : *own_ssms_), options_(resolved(options, llm_.config(), std::size_t(ssms_.size()))),
      manager_(options_.limits, llm_.config().vocab_size, llm_.config().eos_token_id),
      policy_(options_.limits.max_tree_tokens, ssms_.size()) {
  const auto& lim = options_.limits;
  // Tree rows sit after the committed rows, so the caches keep room for one tree beyond the sequence.
  llm_.create_kv_cache(lim.kv_layout());
  for (int i = 0; i < ssms_.size(); ++i)
    if (ssms_.config(i).vocab_size != llm_.config().vocab_size)
      throw Error("the SSM's vocabulary (" + std::to_string(ssms_.config(i).vocab_size) + " tokens) differs from the LLM's (" +
                  std::to_string(llm_.config().vocab_size) + ")");
  // An SSM's rows: the sequence and its own tree. Paged, its cache has the LLM's blocks and
  // follows the LLM's block tables: a tree within the LLM's tree budget fits them.
  KvLayout ssm_layout = lim.kv_layout();
  ssm_layout.capacity = lim.max_sequence_length + options_.tree.width * options_.tree.depth + 1;
  if (speculative()) ssms_.create_kv_caches(ssm_layout);
}

std::vector<std::int32_t> Engine::kv_blocks(int slot) const {
  const KvBlockPool* pool = manager_.kv_blocks();
  if (!pool) return {};
  const auto table = pool->table(slot);
  return {table.begin(), table.end()};
}

Engine::~Engine() = default;

RequestId Engine::submit(std::vector<std::int32_t> prompt, const GenerationConfig& config) {
  const RequestId id = manager_.submit(std::move(prompt), config);
  runtimes_[id] = std::make_unique<Runtime>(config.sampling.seed, ssms_.size());
  return id;
}

bool Engine::cancel(RequestId id) { return manager_.cancel(id); }

Engine::Runtime& Engine::runtime(RequestId id) { return *runtimes_.at(id); }

bool Engine::step(const TokenSink& sink) {
  retire_done();
  const int decoding = manager_.decoding_count();
  // With nothing decoding (prompts only) the policy has nothing to decide.
  const int most = options_.limits.max_tree_tokens;  // 0 without SSMs
  const int tree_tokens = options_.adaptive_speculation && decoding > 0 ? policy_.tree_tokens(decoding) : most;
  const bool speculate = tree_tokens > 0;
  const StepPlan plan = manager_.schedule(tree_tokens);
  if (plan.empty()) return false;
  // A request in a slot new to it (just admitted, or back after a preemption) starts over in
  // the SSMs, which forget what they held for the slot's last request.
  moved_slots_.clear();
  auto place = [&](RequestId id, int slot) {
    Runtime& rt = runtime(id);
    if (rt.slot == slot) return;
    rt.slot = slot;
    rt.ssm_from = 0;
    moved_slots_.push_back(slot);
  };
  for (const auto& d : plan.decode) place(d.id, d.slot);
  for (const auto& c : plan.prefill) place(c.id, c.slot);
  ++stats_.steps;
  stats_.speculative_steps += speculate;
  const auto start = std::chrono::steady_clock::now();
  const long long committed_before = stats_.committed_tokens;
  const std::vector<TokenTree> trees = propose(plan, speculate);
  const LogitRows logits = run_llm(plan, trees);
  // The logits come back in batch order: every tree's nodes, then the completed prompts.
  std::size_t row = 0;
  for (std::size_t i = 0; i < plan.decode.size(); ++i) {
    commit_decode(plan, i, trees[i], logits, row, speculate, sink);
    row += std::size_t(trees[i].size());
  }
  for (const auto& c : plan.prefill)
    if (c.completes_prompt) commit_first_token(c, logits, row++, sink);
  // A step that switched modes is not measured: after incremental steps the SSMs catch up on
  // the tokens they missed, a cost of switching rather than of speculating.
  if (speculative() && plan.prefill.empty() && !plan.decode.empty() && speculate == last_step_speculated_)
    policy_.record(decoding, tree_tokens, stats_.committed_tokens - committed_before,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (!plan.decode.empty()) last_step_speculated_ = speculate;
  return true;
}

std::vector<TokenTree> Engine::propose(const StepPlan& plan, bool speculate) {
  std::vector<TokenTree> merged;
  if (!speculate) {
    for (const auto& d : plan.decode) merged.emplace_back(d.root_token);
    // The SSMs catch up on what they did not see (prompts included) when they next grow a tree
    // for it; a slot with a new request only has them forget what they held for the slot's last
    // one, after the commits still owed to it (which would otherwise land on the new one).
    SsmWork forget;
    for (const int slot : moved_slots_) forget.prefill.push_back({slot, 0, {}, {}});
    if (!forget.prefill.empty()) {
      forget.commits.swap(ssm_commits_);
      ssms_.run(std::vector<SsmWork>(std::size_t(ssms_.size()), forget));
    }
    return merged;
  }
  const SsmWork common = ssm_work(plan);
  std::vector<SsmWork> work(std::size_t(ssms_.size()), common);
  for (std::size_t s = 0; s < work.size(); ++s)
    for (std::size_t j = 0; j < plan.decode.size(); ++j) work[s].jobs[j].rng = runtime(plan.decode[j].id).drafts[s];

  const auto start = std::chrono::steady_clock::now();
  const std::vector<SsmTrees> own = ssms_.run(work);
  stats_.ssm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  for (std::size_t j = 0; j < plan.decode.size(); ++j) {
    std::vector<TokenTree> per_ssm;
    for (std::size_t s = 0; s < own.size(); ++s) {
      per_ssm.push_back(own[s].trees.at(j));
      runtime(plan.decode[j].id).drafts[s] = own[s].rngs.at(j);
    }
    merged.push_back(TokenTree::merge(per_ssm));
  }
  return merged;
}

SsmWork Engine::ssm_work(const StepPlan& plan) {
  SsmWork w;
  w.commits.swap(ssm_commits_);
  for (const int slot : moved_slots_) w.prefill.push_back({slot, 0, {}, {}});  // forgotten first
  for (const auto& c : plan.prefill) {
    // Chunks of the prompt that went by in steps without speculation go along with this one.
    const auto& tokens = manager_.request(c.id).tokens;
    int& from = runtime(c.id).ssm_from;
    w.prefill.push_back({c.slot, from, {tokens.begin() + from, tokens.begin() + c.end}, kv_blocks(c.slot)});
    from = c.end;
  }
  const int n = ssms_.size();
  for (const auto& d : plan.decode) {
    // A smaller budget than W * D per SSM buys depth first: a chain gains more than a bush.
    TreeShape shape;
    shape.depth = std::min(options_.tree.depth, d.tree_budget / n);
    shape.width = shape.depth > 0 ? std::min(options_.tree.width, d.tree_budget / (n * shape.depth)) : 0;
    const Request& r = manager_.request(d.id);
    int& from = runtime(d.id).ssm_from;
    const int first = shape.depth > 0 ? from : d.root_row;  // no tree: only the root is needed
    w.jobs.push_back({d.slot, d.root_row, first, {r.tokens.begin() + first, r.tokens.begin() + d.root_row + 1}, shape,
                      r.config.sampling, Rng(), kv_blocks(d.slot)});
    if (shape.depth > 0) from = d.root_row + 1;
  }
  return w;
}

LogitRows Engine::run_llm(const StepPlan& plan, const std::vector<TokenTree>& trees) {
  ForwardBatch batch;
  // Summaries when every request needs only its rows' best tokens (greedy, sampling from the
  // top_k, or from a nucleus, which the summary holds or else brings its row along), else whole rows.
  SummaryWidth width(llm_.config().vocab_size, true);
  for (const auto& d : plan.decode) width.need(manager_.request(d.id).config.sampling);
  for (const auto& c : plan.prefill) width.need(manager_.request(c.id).config.sampling);
  batch.summary_k = width.k();
  bool nucleus = false;
  // Each logit row's nucleus sampling (ForwardBatch::nucleus_temperature), as rows are added.
  auto sampled = [&](RequestId id, int rows) {
    const SamplingParams& s = manager_.request(id).config.sampling;
    nucleus = nucleus || samples_nucleus(s);
    batch.nucleus_temperature.insert(batch.nucleus_temperature.end(), std::size_t(rows), samples_nucleus(s) ? s.temperature : 0.0f);
    batch.nucleus_top_p.insert(batch.nucleus_top_p.end(), std::size_t(rows), samples_nucleus(s) ? s.top_p : 1.0f);
  };
  for (std::size_t i = 0; i < plan.decode.size(); ++i) {
    for (int n = 0; n < trees[i].size(); ++n)
      add_tree_node(batch, trees[i], n, plan.decode[i].slot, plan.decode[i].root_row, true);
    sampled(plan.decode[i].id, trees[i].size());
  }
  for (const auto& c : plan.prefill) {
    const auto& tokens = manager_.request(c.id).tokens;
    for (int p = c.begin; p < c.end; ++p)
      batch.add_causal(tokens[std::size_t(p)], c.slot, p, c.completes_prompt && p + 1 == c.end);
    if (c.completes_prompt) sampled(c.id, 1);
  }
  if (!nucleus || batch.summary_k == 0) {
    batch.nucleus_temperature.clear();
    batch.nucleus_top_p.clear();
  }
  if (const KvBlockPool* blocks = manager_.kv_blocks())
    batch.attach_block_tables([&](int slot) { return blocks->table(slot); });
  const auto start = std::chrono::steady_clock::now();
  llm_.forward(batch, logits_);
  stats_.llm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats_.llm_tokens += static_cast<long long>(batch.size());
  return LogitRows(logits_, llm_.config().vocab_size, batch.summary_k, batch.nucleus_temperature, batch.nucleus_top_p);
}

void Engine::commit_decode(const StepPlan& plan, std::size_t entry, const TokenTree& tree, const LogitRows& logits,
                           std::size_t row, bool speculated, const TokenSink& sink) {
  const DecodeEntry& d = plan.decode[entry];
  Request& r = manager_.request(d.id);
  const Verification v =
      r.config.sampling.greedy()
          ? verify_greedy(tree, [&](int n) { return logits.best(row + std::size_t(n)); })
          : verify_sampling(
                tree, [&](int n, std::vector<float>& p) { logits.distribution(row + std::size_t(n), r.config.sampling, p); },
                runtime(d.id).verify);
  r.stats.llm_steps++;
  r.stats.tree_tokens += tree.size() - 1;
  r.stats.tree_depth_per_step.push_back(tree.depth());
  const int kept = manager_.commit(d.id, v.tokens);
  r.stats.accepted_per_step.push_back(kept);
  stats_.committed_tokens += kept;
  if (kept > 0) sink(d.id, std::span(v.tokens).first(std::size_t(kept)));
  if (!r.active()) return;

  // The accepted nodes' keys and values move to the rows right after the root.
  std::vector<std::pair<int, int>> moves;
  for (std::size_t j = 0; j < v.path.size(); ++j)
    if (v.path[j] != int(j) + 1) moves.emplace_back(d.root_row + v.path[j], d.root_row + 1 + int(j));
  const std::vector<std::int32_t> blocks = kv_blocks(d.slot);
  if (!moves.empty()) llm_.move_kv_rows(d.slot, moves, blocks);
  if (speculated) ssm_commits_.push_back({d.slot, d.root_row, v.tokens, blocks});  // for the trees the SSMs grew
}

void Engine::commit_first_token(const PrefillChunk& c, const LogitRows& logits, std::size_t row, const TokenSink& sink) {
  Request& r = manager_.request(c.id);
  const std::int32_t token = logits.sample(row, r.config.sampling, runtime(c.id).verify);
  r.stats.time_to_first_token_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - runtime(c.id).submitted).count();
  const int kept = manager_.commit(c.id, std::span(&token, 1));
  stats_.committed_tokens += kept;
  if (kept > 0) sink(c.id, std::span(&token, 1));
}

void Engine::retire_done() {
  for (RequestId id : manager_.take_done()) runtimes_.erase(id);
}

void Engine::run(const TokenSink& sink) {
  while (manager_.has_work())
    if (!step(sink)) break;
  retire_done();
}

}  // namespace banyan
