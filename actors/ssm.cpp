#include "actors/ssm.hpp"

#include "actors/weak_handle.hpp"
#include "model/error.hpp"

namespace banyan::actors {

namespace {

struct SsmState {
  SsmState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  std::shared_ptr<LlamaModel> model;
  std::unique_ptr<SsmRunner> runner;
};
using SsmPointer = ssm_actor::stateful_pointer<SsmState>;

ssm_actor::behavior_type ssm(SsmPointer self, std::shared_ptr<LlamaModel> model) {
  self->state.model = std::move(model);
  self->state.runner = std::make_unique<SsmRunner>(*self->state.model);
  return {
      [=](const SsmWork& work) -> caf::result<SsmTrees> {
        try {
          return self->state.runner->run(work);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, std::string("SSM: ") + e.what());
        }
      },
      [=](kv_cache_atom, const KvLayout& layout) -> caf::result<std::uint64_t> {
        try {
          return std::uint64_t(self->state.runner->create_kv_cache(layout));
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, std::string("SSM: ") + e.what());
        }
      },
  };
}

ssm_actor strong(const caf::weak_actor_ptr& ssm) { return lock_weak<ssm_actor>(ssm, "the SSM actors are gone"); }

}  // namespace

std::vector<ssm_actor> spawn_ssms(caf::actor_system& system, std::vector<std::shared_ptr<LlamaModel>> models) {
  std::vector<ssm_actor> handles;
  for (auto& m : models) handles.push_back(system.spawn<caf::detached>(ssm, std::move(m)));
  return handles;
}

ActorSsms::ActorSsms(caf::actor_system& system, const std::vector<ssm_actor>& ssms, std::vector<LlamaConfig> configs)
    : system_(system), configs_(std::move(configs)) {
  if (ssms.size() != configs_.size()) throw Error("ActorSsms: one config per SSM");
  for (const auto& s : ssms) ssms_.push_back(caf::actor_cast<caf::weak_actor_ptr>(s));
}

void ActorSsms::create_kv_caches(const KvLayout& layout) {
  caf::scoped_actor self{system_};
  for (auto& s : ssms_)
    self->request(strong(s), caf::infinite, kv_cache_atom::value, layout)
        .receive([](std::uint64_t) {},
                 [&](caf::error& e) { throw Error("creating an SSM's KV cache: " + system_.render(e)); });
}

std::vector<SsmTrees> ActorSsms::run(const std::vector<SsmWork>& work) {
  caf::scoped_actor self{system_};
  // Every request is sent before any answer is awaited: the SSMs compute at the same time.
  std::vector<decltype(self->request(ssm_actor{}, caf::infinite, SsmWork{}))> pending;
  for (std::size_t i = 0; i < ssms_.size(); ++i) pending.push_back(self->request(strong(ssms_[i]), caf::infinite, work[i]));
  std::vector<SsmTrees> out(ssms_.size());
  std::string failure;
  for (std::size_t i = 0; i < pending.size(); ++i)
    pending[i].receive([&](SsmTrees& t) { out[i] = std::move(t); },
                       [&](caf::error& e) { failure = system_.render(e); });
  if (!failure.empty()) throw Error("an SSM failed: " + failure);
  return out;
}

}  // namespace banyan::actors
