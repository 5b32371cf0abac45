#pragma once
// The serving runtime as the gateway sees it: start a generation, receive its tokens, cancel
// it. No CAF in this header: the HTTP/websocket code includes this, never the actor headers.
#include <atomic>
#include <cstddef>
#include <functional>

#include "actors/message_types.hpp"

namespace banyan::actors {

// What the scheduler saw after its last step, for /metrics (written by the scheduler).
struct SchedulerGauges {
  std::atomic<int> queued{0};  // requests waiting for a KV-cache slot
  std::atomic<int> active{0};  // requests holding a slot
  std::atomic<int> slots{0};   // slots in all (max_requests_per_batch)
  std::atomic<int> kv_blocks{0};       // a paged KV cache's blocks (0: not paged)
  std::atomic<int> kv_blocks_used{0};  // blocks held by requests
  std::atomic<long long> preemptions{0};
  std::atomic<int> kv_blocks_cached{0};  // blocks the prefix cache knows
  std::atomic<long long> cached_tokens{0};  // from the prefix cache, since the start
  std::atomic<long long> steps{0};
};

class Generations {
 public:
  using OnTokens = std::function<void(std::vector<std::int32_t>)>;
  using OnDone = std::function<void(RequestDone)>;
  virtual ~Generations() = default;

  // Starts a generation and returns its handle. `on_tokens` receives each step's committed
  // tokens in order, then `on_done` runs exactly once; both run on the runtime's threads.
  virtual std::uint64_t start(GenerateRequest request, OnTokens on_tokens, OnDone on_done) = 0;
  // Cancels a generation (its on_done still follows); ended or unknown handles are ignored.
  virtual void cancel(std::uint64_t generation) = 0;
  // Generations started whose on_done has not run yet.
  virtual std::size_t running() const = 0;
};

}  // namespace banyan::actors
