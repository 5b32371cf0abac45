#include "actors/memory.hpp"

#include "model/error.hpp"

namespace banyan::actors {

namespace {

memory_actor::behavior_type memory(std::shared_ptr<NodeWeights> weights) {
  return {
      [=](weights_atom) { return weights; },
      [=](memory_atom) { return weights->report(); },
  };
}

}  // namespace

memory_actor spawn_memory(caf::actor_system& system, std::shared_ptr<NodeWeights> weights) {
  if (!weights) throw Error("spawn_memory: no weights");
  return system.spawn(memory, std::move(weights));
}

std::shared_ptr<NodeWeights> weights_of(caf::actor_system& system, const memory_actor& memory) {
  caf::scoped_actor self{system};
  std::shared_ptr<NodeWeights> out;
  self->request(memory, caf::infinite, weights_atom::value)
      .receive([&](std::shared_ptr<NodeWeights>& w) { out = std::move(w); },
               [&](caf::error& e) { throw Error("the memory actor did not hand out the weights: " + system.render(e)); });
  return out;
}

MemoryReport report_of(caf::actor_system& system, const memory_actor& memory) {
  caf::scoped_actor self{system};
  MemoryReport out;
  self->request(memory, std::chrono::seconds(1), memory_atom::value)
      .receive([&](MemoryReport& r) { out = r; }, [](caf::error&) {});
  return out;
}

}  // namespace banyan::actors
