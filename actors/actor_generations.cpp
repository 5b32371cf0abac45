#include "actors/actor_generations.hpp"

#include <map>
#include <mutex>

#include "actors/request.hpp"

namespace banyan::actors {

namespace {

// The client end of one generation: hands its tokens and its end to the callbacks. (The
// callbacks come as spawn arguments: CAF 0.17 dereferences a null argument tuple when a
// function actor is spawned with none, which UBSan reports.)
caf::behavior generation_client(caf::event_based_actor* self, Generations::OnTokens on_tokens,
                                Generations::OnDone on_done) {
  return {
      [=](TokenChunk& c) { on_tokens(std::move(c.tokens)); },
      [=](RequestDone& d) {
        on_done(std::move(d));
        self->quit();
      },
  };
}

class ActorGenerations final : public Generations {
 public:
  ActorGenerations(caf::actor_system& system, scheduler_actor scheduler)
      : system_(system), scheduler_(std::move(scheduler)) {}

  std::uint64_t start(GenerateRequest request, OnTokens on_tokens, OnDone on_done) override {
    std::lock_guard lock(mutex_);  // the done handler below waits here until the entry exists
    const std::uint64_t handle = next_++;
    auto done = [this, handle, on_done = std::move(on_done)](RequestDone d) {
      on_done(std::move(d));
      forget(handle);  // after: running() == 0 means every on_done has run
    };
    caf::actor client = system_.spawn(generation_client, std::move(on_tokens), OnDone(std::move(done)));
    running_.emplace(handle, spawn_request(system_, scheduler_, std::move(request), std::move(client)));
    return handle;
  }

  void cancel(std::uint64_t generation) override {
    std::lock_guard lock(mutex_);
    if (auto it = running_.find(generation); it != running_.end()) caf::anon_send(it->second, cancel_atom::value);
  }

  std::size_t running() const override {
    std::lock_guard lock(mutex_);
    return running_.size();
  }

 private:
  void forget(std::uint64_t handle) {
    std::lock_guard lock(mutex_);
    running_.erase(handle);
  }

  caf::actor_system& system_;
  scheduler_actor scheduler_;
  mutable std::mutex mutex_;
  std::uint64_t next_ = 1;
  std::map<std::uint64_t, request_actor> running_;
};

}  // namespace

std::unique_ptr<Generations> make_actor_generations(caf::actor_system& system, scheduler_actor scheduler) {
  return std::make_unique<ActorGenerations>(system, std::move(scheduler));
}

}  // namespace banyan::actors
