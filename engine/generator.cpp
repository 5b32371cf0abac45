#include "engine/generator.hpp"

#include <algorithm>
#include <chrono>

#include "model/error.hpp"

namespace banyan {

std::string_view finish_reason_name(FinishReason r) { return r == FinishReason::eos ? "stop" : "length"; }

Generator::Generator(LlamaModel& model, GenerationLimits limits) : model_(model), limits_(limits) {
  if (limits_.max_sequence_length <= 0) limits_.max_sequence_length = model.config().max_position_embeddings;
  if (limits_.max_requests_per_batch <= 0 || limits_.max_tokens_per_batch <= 0)
    throw Error("generator: max_requests_per_batch and max_tokens_per_batch must be positive");
}

std::vector<GenerationResult> Generator::run(const std::vector<GenerationRequest>& requests,
                                             const TokenSink& on_token) {
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    const std::string which = "request " + std::to_string(i);
    if (r.prompt.empty()) throw Error(which + ": empty prompt");
    if (int(r.prompt.size()) >= limits_.max_sequence_length)
      throw Error(which + ": the prompt has " + std::to_string(r.prompt.size()) +
                  " tokens, but max_sequence_length is " + std::to_string(limits_.max_sequence_length) +
                  " (prompt and generated tokens together)");
    if (r.max_new_tokens < 0) throw Error(which + ": max_new_tokens must not be negative");
  }
  std::vector<GenerationResult> results(requests.size());
  const auto group = std::size_t(limits_.max_requests_per_batch);
  for (std::size_t first = 0; first < requests.size(); first += group)
    run_group(requests, first, std::min(group, requests.size() - first), on_token, results);
  return results;
}

void Generator::run_group(const std::vector<GenerationRequest>& requests, std::size_t first, std::size_t count,
                          const TokenSink& on_token, std::vector<GenerationResult>& results) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const int vocab = model_.config().vocab_size;

  int capacity = 0;
  for (std::size_t s = 0; s < count; ++s) {
    const auto& r = requests[first + s];
    capacity = std::max(capacity, std::min(limits_.max_sequence_length, int(r.prompt.size()) + r.max_new_tokens));
  }
  if (!kv_ || kv_->spec().slots < int(count) || kv_->spec().capacity < capacity)
    kv_ = model_.create_kv_cache(std::max<int>(int(count), kv_ ? kv_->spec().slots : 0),
                                 std::max(capacity, kv_ ? kv_->spec().capacity : 0));

  std::vector<Sampler> samplers;
  std::vector<int> length(count);          // tokens in each slot's cache
  std::vector<std::int32_t> next(count);   // the token each slot feeds next
  std::vector<bool> active(count, false);
  for (std::size_t s = 0; s < count; ++s) samplers.emplace_back(requests[first + s].sampling);

  // Emits `token` for slot s; returns whether the sequence goes on.
  auto emit = [&](std::size_t s, std::int32_t token) {
    const auto& req = requests[first + s];
    auto& res = results[first + s];
    if (res.tokens.empty())
      res.time_to_first_token_s = std::chrono::duration<double>(clock::now() - start).count();
    if (token == model_.config().eos_token_id) {
      res.finish = FinishReason::eos;
      return false;
    }
    res.tokens.push_back(token);
    on_token(first + s, token);
    res.finish = FinishReason::length;
    return int(res.tokens.size()) < req.max_new_tokens && length[s] + 1 < limits_.max_sequence_length;
  };

  // Prefill: every prompt, packed into passes of at most max_tokens_per_batch tokens.
  ForwardBatch batch;
  std::vector<std::size_t> owner;  // slot of each logit row
  auto flush = [&] {
    if (batch.size() == 0) return;
    model_.forward(batch, *kv_, logits_);
    for (std::size_t j = 0; j < owner.size(); ++j) {
      const std::size_t s = owner[j];
      next[s] = samplers[s].next({logits_.data() + j * std::size_t(vocab), std::size_t(vocab)});
      active[s] = emit(s, next[s]);
    }
    batch = {};
    owner.clear();
  };
  for (std::size_t s = 0; s < count; ++s) {
    const auto& prompt = requests[first + s].prompt;
    if (requests[first + s].max_new_tokens == 0) continue;
    length[s] = int(prompt.size());
    for (std::size_t p = 0; p < prompt.size(); ++p) {
      const bool last = p + 1 == prompt.size();
      batch.add_causal(prompt[p], int(s), int(p), last);
      if (last) owner.push_back(s);
      if (int(batch.size()) == limits_.max_tokens_per_batch) flush();
    }
  }
  flush();

  // Decode: one token per active sequence per pass.
  for (;;) {
    for (std::size_t s = 0; s < count; ++s) {
      if (!active[s]) continue;
      batch.add_causal(next[s], int(s), length[s]++, true);
      owner.push_back(s);
    }
    if (batch.size() == 0) break;
    flush();
  }
}

}  // namespace banyan
