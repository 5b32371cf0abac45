#include "scheduler/request_manager.hpp"

#include <algorithm>
#include <utility>

#include "model/error.hpp"
#include "scheduler/token_tree.hpp"

namespace banyan {

void SchedulerLimits::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("scheduler limits: " + what);
  };
  need(max_requests_per_batch > 0, "max_requests_per_batch must be positive");
  need(max_sequence_length > 1, "max_sequence_length must be at least 2");
  need(max_tokens_per_batch >= max_requests_per_batch,
       "max_tokens_per_batch (" + std::to_string(max_tokens_per_batch) + ") must be at least max_requests_per_batch (" +
           std::to_string(max_requests_per_batch) + "): every decoding request sends one token per step");
  need(max_tree_tokens >= 0 && max_tree_tokens < kMaxTreeNodes,
       "max_tree_tokens must be between 0 and " + std::to_string(kMaxTreeNodes - 1));
}

int StepPlan::tokens() const {
  int n = int(decode.size());
  for (const auto& c : prefill) n += c.end - c.begin;
  return n;
}

RequestManager::RequestManager(SchedulerLimits limits, int vocab_size, std::int32_t eos_token)
    : limits_(limits), vocab_(vocab_size), eos_(eos_token), slot_used_(std::size_t(limits.max_requests_per_batch), false) {
  limits_.validate();
}

RequestId RequestManager::submit(std::vector<std::int32_t> prompt, const GenerationConfig& config) {
  const RequestId id = next_id_++;
  Request& r = requests_[id];
  r.id = id;
  r.prompt_length = int(prompt.size());
  r.tokens = std::move(prompt);
  r.config = config;
  if (r.tokens.empty()) {
    r.error = "the prompt is empty";
  } else if (r.prompt_length >= limits_.max_sequence_length) {
    r.error = "the prompt has " + std::to_string(r.prompt_length) + " tokens, but max_sequence_length is " +
              std::to_string(limits_.max_sequence_length) + " (prompt and generated tokens together)";
  } else if (auto bad = std::find_if(r.tokens.begin(), r.tokens.end(), [&](auto t) { return t < 0 || t >= vocab_; });
             bad != r.tokens.end()) {
    r.error = "token id " + std::to_string(*bad) + " is outside the vocabulary of " + std::to_string(vocab_);
  } else if (config.max_new_tokens < 0) {
    r.error = "max_new_tokens must not be negative";
  }
  if (!r.error.empty()) {
    end(r, RequestState::failed, FinishReason::error);
  } else if (config.max_new_tokens == 0) {
    end(r, RequestState::finished, FinishReason::length);
  } else {
    queue_.push_back(id);
  }
  return id;
}

bool RequestManager::cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second.done()) return false;
  end(it->second, RequestState::cancelled, FinishReason::cancelled);
  return true;
}

void RequestManager::fail(RequestId id, const std::string& why) {
  Request& r = request(id);
  if (r.done()) return;
  r.error = why;
  end(r, RequestState::failed, FinishReason::error);
}

void RequestManager::end(Request& r, RequestState state, FinishReason reason) {
  if (r.state == RequestState::queued) queue_.erase(std::remove(queue_.begin(), queue_.end(), r.id), queue_.end());
  if (r.slot >= 0) slot_used_[std::size_t(r.slot)] = false;
  active_.erase(std::remove(active_.begin(), active_.end(), r.id), active_.end());
  r.state = state;
  r.finish = reason;
  done_.push_back(r.id);
}

StepPlan RequestManager::schedule(bool speculative) {
  // Admission: first come, first served, one KV slot each.
  while (!queue_.empty()) {
    auto free_slot = std::find(slot_used_.begin(), slot_used_.end(), false);
    if (free_slot == slot_used_.end()) break;
    Request& r = request(queue_.front());
    queue_.pop_front();
    r.slot = int(free_slot - slot_used_.begin());
    *free_slot = true;
    r.state = RequestState::prefilling;
    active_.push_back(r.id);
  }

  StepPlan plan;
  int budget = limits_.max_tokens_per_batch;
  bool anyone_prefilling = false;
  for (RequestId id : active_) {
    const Request& r = request(id);
    if (r.state == RequestState::decoding) {
      plan.decode.push_back({id, r.slot, int(r.tokens.size()) - 1, r.tokens.back(), 0});
      --budget;
    } else {
      anyone_prefilling = true;
    }
  }

  if (speculative && !plan.decode.empty()) {
    // Trees come before new prompts, but a quarter of the budget stays for prefill so that
    // waiting requests keep moving while others decode.
    const int for_trees = anyone_prefilling ? budget - std::max(1, budget / 4) : budget;
    const int share = std::max(0, for_trees) / int(plan.decode.size());
    for (auto& d : plan.decode) {
      const Request& r = request(d.id);
      // Accepted tokens = path + 1 must fit both the sequence and the token allowance; a
      // request that asked for incremental decoding gets no tree.
      const int room = r.config.speculate ? std::min(limits_.max_sequence_length - int(r.tokens.size()),
                                                     r.config.max_new_tokens - r.generated()) - 1
                                          : 0;
      d.tree_budget = std::max(0, std::min({share, limits_.max_tree_tokens, room}));
      budget -= d.tree_budget;
    }
  }

  for (RequestId id : active_) {
    Request& r = request(id);
    if (r.state != RequestState::prefilling || budget <= 0) continue;
    const int n = std::min(r.prompt_length - r.prefilled, budget);
    if (n <= 0) continue;
    plan.prefill.push_back({id, r.slot, r.prefilled, r.prefilled + n, r.prefilled + n == r.prompt_length});
    r.prefilled += n;
    budget -= n;
  }
  return plan;
}

int RequestManager::commit(RequestId id, std::span<const std::int32_t> accepted) {
  Request& r = request(id);
  if (!r.active()) return 0;
  if (r.state == RequestState::prefilling) {
    if (r.prefilled < r.prompt_length) throw Error("request " + std::to_string(id) + ": tokens committed before its prefill ended");
    r.state = RequestState::decoding;
  }
  int kept = 0;
  for (std::int32_t t : accepted) {
    if (t == eos_) {
      end(r, RequestState::finished, FinishReason::stop);
      break;
    }
    r.tokens.push_back(t);
    ++kept;
    if (r.generated() >= r.config.max_new_tokens || int(r.tokens.size()) >= limits_.max_sequence_length) {
      end(r, RequestState::finished, FinishReason::length);
      break;
    }
  }
  return kept;
}

const Request& RequestManager::request(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) throw Error("unknown request " + std::to_string(id));
  return it->second;
}

Request& RequestManager::request(RequestId id) {
  return const_cast<Request&>(static_cast<const RequestManager*>(this)->request(id));
}

bool RequestManager::has_work() const { return !queue_.empty() || !active_.empty(); }

int RequestManager::active_count() const { return int(active_.size()); }

int RequestManager::decoding_count() const {
  int n = 0;
  for (RequestId id : active_) n += request(id).state == RequestState::decoding;
  return n;
}

std::vector<RequestId> RequestManager::take_done() { return std::exchange(done_, {}); }

void RequestManager::erase(RequestId id) {
  auto it = requests_.find(id);
  if (it != requests_.end() && it->second.done()) requests_.erase(it);
}

}  // namespace banyan
