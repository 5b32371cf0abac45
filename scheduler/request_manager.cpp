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
  need(kv_cache_tokens >= 0, "kv_cache_tokens must not be negative");
  need(kv_block_rows >= 0, "kv_block_rows must not be negative");
  if (kv_cache_tokens > 0) {
    need(kv_block_rows > 0, "kv_cache_tokens needs a paged KV cache (kv_block_rows above 0)");
    const int sequence = kv_layout().capacity;
    const int blocks = (sequence + kv_block_rows - 1) / kv_block_rows;
    need(kv_cache_tokens / kv_block_rows >= blocks,
         "kv_cache_tokens (" + std::to_string(kv_cache_tokens) + ") must hold at least one whole sequence: " +
             std::to_string(max_sequence_length) + " tokens (max_sequence_length) and a token tree of " +
             std::to_string(max_tree_tokens) + ", " + std::to_string(blocks) + " blocks of " + std::to_string(kv_block_rows) +
             " (" + std::to_string(blocks * kv_block_rows) + " tokens)");
  }
}

std::string SchedulerLimits::describe_kv_cache() const {
  return describe(kv_layout()) + (kv_block_rows > 0 && kv_prefix_caching ? ", prefix caching" : "");
}

KvLayout SchedulerLimits::kv_layout() const {
  KvLayout l{max_requests_per_batch, max_sequence_length + max_tree_tokens + 1, {}};
  if (kv_block_rows > 0)
    l.paging = {kv_block_rows, kv_cache_tokens > 0 ? kv_cache_tokens / kv_block_rows
                                                   : l.slots * ((l.capacity + kv_block_rows - 1) / kv_block_rows)};
  return l;
}

int StepPlan::tokens() const {
  int n = int(decode.size());
  for (const auto& c : prefill) n += c.end - c.begin;
  return n;
}

RequestManager::RequestManager(SchedulerLimits limits, int vocab_size, std::int32_t eos_token)
    : limits_(limits), vocab_(vocab_size), eos_(eos_token), slot_used_(std::size_t(limits.max_requests_per_batch), false) {
  limits_.validate();
  const KvLayout layout = limits_.kv_layout();
  if (layout.paging.on()) blocks_.emplace(layout.paging.blocks, layout.paging.block_rows, layout.slots);
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
  free_slot(r);
  r.state = state;
  r.finish = reason;
  done_.push_back(r.id);
}

void RequestManager::free_slot(Request& r) {
  if (r.slot >= 0) {
    slot_used_[std::size_t(r.slot)] = false;
    if (blocks_) blocks_->release(r.slot);
  }
  r.slot = -1;
  active_.erase(std::remove(active_.begin(), active_.end(), r.id), active_.end());
}

void RequestManager::preempt(Request& r) {
  free_slot(r);
  r.prefilled = 0;
  r.state = RequestState::queued;
  r.stats.preemptions++;
  ++preemptions_;
  queue_.push_front(r.id);
}

void RequestManager::admit() {
  // First come, first served, one KV slot each; paged, the blocks of the prefill too, and the
  // decoding requests keep a block each in hand so that admitting does not force a preemption.
  while (!queue_.empty()) {
    auto free_slot = std::find(slot_used_.begin(), slot_used_.end(), false);
    if (free_slot == slot_used_.end()) break;
    Request& r = request(queue_.front());
    const int slot = int(free_slot - slot_used_.begin());
    int cached = 0;
    if (blocks_) {
      const int length = r.prefill_length(), rows = length + 1;  // and the row of the token after it
      // A prompt leaves one token to compute: its logits give the first generated token.
      if (limits_.kv_prefix_caching) cached = blocks_->share_prefix(slot, r.tokens, r.generated() > 0 ? length : length - 1);
      if (blocks_->blocks_for(rows) - blocks_->blocks_for(cached) > blocks_->free_blocks() - decoding_count()) {
        blocks_->release(slot);
        break;
      }
      blocks_->reserve(slot, rows);
    }
    queue_.pop_front();
    r.slot = slot;
    *free_slot = true;
    r.prefilled = cached;
    if (r.generated() == 0) r.stats.cached_prompt_tokens = cached;
    cached_tokens_ += cached;
    // A preempted request whose every token was still cached decodes at once.
    r.state = r.prefilled == r.prefill_length() ? RequestState::decoding : RequestState::prefilling;
    active_.push_back(r.id);
  }
}

void RequestManager::make_room_for_roots() {
  for (std::size_t i = 0; i < active_.size(); ++i) {
    const Request& r = request(active_[i]);
    if (r.state != RequestState::decoding) continue;
    const RequestId id = r.id;
    const int rows = int(r.tokens.size());  // the root is its last token
    while (!blocks_->reserve(r.slot, rows)) {
      const RequestId victim = active_.back();
      preempt(request(victim));
      if (victim == id) break;
    }
  }
}

StepPlan RequestManager::schedule(int tree_tokens) {
  admit();
  if (blocks_) make_room_for_roots();

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

  if (tree_tokens > 0 && !plan.decode.empty()) {
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
      d.tree_budget = std::max(0, std::min({share, limits_.max_tree_tokens, tree_tokens, room}));
      // Paged: tree rows too need blocks; a tree gets what is free.
      if (blocks_)
        d.tree_budget = std::min(d.tree_budget, blocks_->reserve_up_to(d.slot, d.root_row + 1 + d.tree_budget) - (d.root_row + 1));
      budget -= d.tree_budget;
    }
  }

  for (RequestId id : active_) {
    Request& r = request(id);
    if (r.state != RequestState::prefilling || budget <= 0) continue;
    const int length = r.prefill_length(), n = std::min(length - r.prefilled, budget);
    if (n <= 0) continue;
    const bool last = r.prefilled + n == length;
    plan.prefill.push_back({id, r.slot, r.prefilled, r.prefilled + n, last && r.generated() == 0});
    r.prefilled += n;
    budget -= n;
    // A preempted request's tokens are back in the cache: it decodes from its last token on.
    if (last && r.generated() > 0) r.state = RequestState::decoding;
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
  // The rows of the tokens so far are computed and in place (the accepted tree rows are moved
  // after the commit): their whole blocks may serve other requests.
  if (blocks_ && limits_.kv_prefix_caching) blocks_->cache_prefix(r.slot, r.tokens, int(r.tokens.size()));
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
