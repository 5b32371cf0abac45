#include "actors/node.hpp"

#include <algorithm>
#include <utility>

#include <caf/io/all.hpp>
#include <map>
#include <thread>

#include "actors/llm_stage.hpp"
#include "model/error.hpp"

namespace banyan::actors {

namespace {

// The floats of a message are sent before it: once it is here they are too, or nearly.
constexpr auto kBulkTimeout = std::chrono::seconds(3);

struct NodeState {
  NodeState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  std::string node;
  std::map<std::int32_t, llm_stage_actor> stages;  // the doors to them, by first layer
  std::shared_ptr<ClusterHealth> health;
  std::shared_ptr<Bulk> bulk;
};

template <class Promise>
auto fail_with(Promise promise) {
  return [=](caf::error& e) mutable { promise.deliver(std::move(e)); };
}

// What other processes reach a local stage through: a scheduled actor that asks the stage and
// answers for it. A detached stage must never be the sender of what goes to another node: a
// message held in the network layer when that node goes away keeps its sender alive, and a
// detached actor kept alive keeps the actor system from ever shutting down.
// With a data plane, it also takes the activations that came over it, and sends the logits
// the stage answers to the process that waits for them (BulkRef) when the sender asks so.
llm_stage_actor::behavior_type stage_door(llm_stage_actor::pointer self, llm_stage_actor stage,
                                          std::shared_ptr<Bulk> bulk) {
  return {
      [=](StageForward& f) {
        auto promise = self->make_response_promise<StageLogits>();
        const BulkRef ref = f.bulk;
        if (ref.tag != 0) {
          if (!bulk) {
            promise.deliver(caf::make_error(caf::sec::runtime_error, "this node has no data plane"));
            return promise;
          }
          try {
            f.activations = bulk->receive(ref.tag, kBulkTimeout);
          } catch (const std::exception& e) {
            promise.deliver(caf::make_error(caf::sec::runtime_error, std::string("the activations: ") + e.what()));
            return promise;
          }
          f.bulk.tag = 0;  // taken; the reply stays for the stages after
        }
        self->request(stage, caf::infinite, std::move(f))
            .then(
                [=](StageLogits& logits) mutable {
                  // Empty: a later process sent them already, or tensor shards answering their leader.
                  if (ref.reply_tag != 0 && bulk && !logits.logits.empty()) {
                    try {
                      const int peer = bulk->peer(ref.reply_host, ref.reply_port, ref.reply_instance);
                      logits.bulk_tag = ref.reply_tag;
                      bulk->send(peer, logits.bulk_tag, std::exchange(logits.logits, {}));
                    } catch (const std::exception& e) {
                      promise.deliver(caf::make_error(caf::sec::runtime_error,
                                                      std::string("sending the logits back: ") + e.what()));
                      return;
                    }
                  }
                  promise.deliver(std::move(logits));
                },
                fail_with(promise));
        return promise;
      },
      [=](kv_cache_atom a, const KvLayout& layout) {
        auto promise = self->make_response_promise<std::uint64_t>();
        self->request(stage, caf::infinite, a, layout)
            .then([=](std::uint64_t bytes) mutable { promise.deliver(bytes); }, fail_with(promise));
        return promise;
      },
      [=](layers_atom a) {
        auto promise = self->make_response_promise<std::int32_t, std::int32_t>();
        self->request(stage, caf::infinite, a)
            .then([=](std::int32_t first, std::int32_t end) mutable { promise.deliver(first, end); }, fail_with(promise));
        return promise;
      },
  };
}

node_actor::behavior_type node_behavior(node_actor::stateful_pointer<NodeState> self, std::string name,
                                        std::map<std::int32_t, llm_stage_actor> stages,
                                        std::shared_ptr<ClusterHealth> health, std::shared_ptr<Bulk> bulk,
                                        memory_actor memory) {
  self->state.node = std::move(name);
  for (auto& [layer, stage] : stages)
    self->state.stages.emplace(layer, self->spawn<caf::linked>(stage_door, std::move(stage), bulk));
  self->state.health = std::move(health);
  self->state.bulk = std::move(bulk);
  return {
      [=](stage_atom, std::int32_t first_layer) -> caf::result<llm_stage_actor> {
        const auto& st = self->state;
        auto it = st.stages.find(first_layer);
        if (it != st.stages.end()) return it->second;
        std::string held;
        for (const auto& [layer, stage] : st.stages) held += (held.empty() ? "" : ", ") + std::to_string(layer);
        return caf::make_error(caf::sec::runtime_error, "node " + st.node + " holds no stage starting at layer " +
                                                            std::to_string(first_layer) + " (its stages start at " +
                                                            (held.empty() ? "none" : held) + ")");
      },
      [=](layers_atom) {
        std::vector<std::int32_t> layers;
        for (const auto& [layer, stage] : self->state.stages) layers.push_back(layer);
        return layers;
      },
      [=](data_plane_atom) {
        const auto& plane = self->state.bulk;
        return plane ? std::make_tuple(plane->host(), std::int32_t(plane->port()))
                     : std::make_tuple(std::string(), std::int32_t(0));
      },
      [=](health_atom) { return self->state.health->problems(); },
      [=](memory_atom a) -> caf::result<MemoryReport> {
        if (!memory) return MemoryReport{};
        return self->delegate(memory, a);
      },
  };
}

}  // namespace

Node::Node(caf::actor_system& system, std::string name, std::vector<StageRun> runs, std::vector<NodeAddress> watched,
           std::shared_ptr<Bulk> bulk, std::shared_ptr<ClusterHealth> health, memory_actor memory)
    : system_(system), health_(health ? std::move(health) : std::make_shared<ClusterHealth>()) {
  std::map<std::int32_t, llm_stage_actor> by_layer;
  for (auto& run : runs) {
    llm_stage_actor after;
    if (run.next) {
      const std::string from = run.stages.empty() ? "the node " + name : layers_text(run.stages.back()->layers());
      links_.push_back(spawn_stage_link(system, run.next->node, run.next->first_layer, "the stage after " + from, health_, bulk));
      after = links_.back();
    }
    std::vector<std::vector<llm_stage_actor>> shard_links(run.shard_nodes.size());
    for (std::size_t s = 0; s < run.shard_nodes.size(); ++s)
      for (const NodeAddress& to : run.shard_nodes[s]) {
        const LayerRange layers = run.stages[s]->layers();
        links_.push_back(spawn_stage_link(system, to, layers.first, "the tensor shard group of " + layers_text(layers), health_, bulk));
        shard_links[s].push_back(links_.back());
      }
    const bool leads = run.stages.empty() || run.stages.front()->leads();
    const int first = run.stages.empty() ? run.next->first_layer : run.stages.front()->first_layer();
    std::vector<int> firsts;
    for (const auto& s : run.stages) firsts.push_back(s->first_layer());
    auto handles = spawn_llm_stages(system, std::move(run.stages), after, std::move(shard_links));
    for (std::size_t i = 0; i < handles.size(); ++i) by_layer.emplace(firsts[i], handles[i]);
    if (leads) runs_.emplace_back(first, handles.empty() ? after : handles.front());  // the others only answer their leader
    stages_.insert(stages_.end(), handles.begin(), handles.end());
  }
  // One link a node: a leader already watched, or leading two of the runs here, is heartbeaten once.
  std::vector<NodeAddress> heard = watched;
  for (const auto& run : runs) {
    if (!run.leader) continue;
    const auto same = [&](const NodeAddress& w) { return w.host == run.leader->host && w.port == run.leader->port; };
    if (std::any_of(heard.begin(), heard.end(), same)) continue;
    heard.push_back(*run.leader);
    links_.push_back(spawn_node_heartbeat(system, *run.leader, health_));
  }
  for (auto& w : watched) links_.push_back(spawn_node_watch(system, std::move(w), health_, watched_memory_));
  node_ = system.spawn(node_behavior, std::move(name), std::move(by_layer), health_, std::move(bulk), std::move(memory));
}

Node::~Node() {
  if (published_port_ >= 0) system_.middleman().unpublish(node_, std::uint16_t(published_port_));
  caf::anon_send_exit(node_, caf::exit_reason::user_shutdown);
  for (auto& l : links_) caf::anon_send_exit(l, caf::exit_reason::user_shutdown);
  for (auto& s : stages_) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
}

llm_stage_actor Node::run_at(int layer) const {
  for (const auto& [first, actor] : runs_)
    if (first == layer) return actor;
  throw Error("this process holds no pipeline stage starting at layer " + std::to_string(layer));
}

int Node::publish(const std::string& host, int port) {
  auto published = system_.middleman().publish(node_, std::uint16_t(port), host.c_str(), true);
  if (!published)
    throw Error("cannot serve the node on " + host + ":" + std::to_string(port) + ": " + system_.render(published.error()));
  published_port_ = *published;
  return published_port_;
}

void Node::wait_until_joined(std::chrono::seconds timeout,
                             const std::function<void(const std::vector<std::string>&)>& waiting) {
  const auto start = std::chrono::steady_clock::now();
  auto told = start;
  for (;;) {
    const auto problems = health_->problems();
    if (problems.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - start > timeout) {
      std::string all;
      for (const auto& p : problems) all += "\n  " + p;
      throw Error("the cluster did not come together within " + std::to_string(timeout.count()) + " s:" + all);
    }
    if (now - told >= std::chrono::seconds(5)) {
      waiting(problems);
      told = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::vector<int> node_stage_layers(caf::actor_system& system, const std::string& host, int port) {
  const std::string where = host + ":" + std::to_string(port);
  auto node = system.middleman().remote_actor<node_actor>(host, std::uint16_t(port));
  if (!node)
    throw Error("no banyan node answers at " + where + " (is `banyan stage` running there?): " + system.render(node.error()));
  std::vector<int> layers;
  caf::scoped_actor self{system};
  self->request(*node, std::chrono::seconds(30), layers_atom::value)
      .receive([&](std::vector<std::int32_t>& firsts) { layers.assign(firsts.begin(), firsts.end()); },
               [&](caf::error& e) { throw Error("asking the node at " + where + " for its stages: " + system.render(e)); });
  return layers;
}

}  // namespace banyan::actors
