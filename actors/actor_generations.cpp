#include "actors/actor_generations.hpp"

#include <map>
#include <memory>
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
    std::lock_guard lock(running_->mutex);  // the done handler below waits here until the entry exists
    const std::uint64_t handle = running_->next++;
    // The handler holds the table, not this object: at shutdown a generation cancelled in the
    // grace period can end after the server has dropped its Generations (TSan saw the map
    // freed under a late erase).
    auto done = [running = running_, handle, on_done = std::move(on_done)](RequestDone d) {
      on_done(std::move(d));
      std::lock_guard erase_lock(running->mutex);  // after on_done: running() == 0 means every on_done has run
      running->requests.erase(handle);
    };
    caf::actor client = system_.spawn(generation_client, std::move(on_tokens), OnDone(std::move(done)));
    running_->requests.emplace(handle, spawn_request(system_, scheduler_, std::move(request), std::move(client)));
    return handle;
  }

  void cancel(std::uint64_t generation) override {
    std::lock_guard lock(running_->mutex);
    if (auto it = running_->requests.find(generation); it != running_->requests.end())
      caf::anon_send(it->second, cancel_atom::value);
  }

  std::size_t running() const override {
    std::lock_guard lock(running_->mutex);
    return running_->requests.size();
  }

 private:
  struct Running {
    std::mutex mutex;
    std::uint64_t next = 1;
    std::map<std::uint64_t, request_actor> requests;
  };

  caf::actor_system& system_;
  scheduler_actor scheduler_;
  std::shared_ptr<Running> running_ = std::make_shared<Running>();
};

}  // namespace

std::unique_ptr<Generations> make_actor_generations(caf::actor_system& system, scheduler_actor scheduler) {
  return std::make_unique<ActorGenerations>(system, std::move(scheduler));
}

}  // namespace banyan::actors
