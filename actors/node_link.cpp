#include "actors/node_link.hpp"

#include <utility>

#include <caf/io/all.hpp>
#include <map>
#include <optional>

namespace banyan::actors {

namespace {

// A node is silent when a heartbeat stays unanswered this long; with one heartbeat a second, a
// stopped node is found within about 3.5 s.
constexpr auto kHeartbeatEvery = std::chrono::seconds(1);
constexpr auto kHeartbeatTimeout = std::chrono::milliseconds(2500);
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// Allocating a rejoined stage's KV cache (a node that stops meanwhile must not hold the link).
constexpr auto kKvTimeout = std::chrono::seconds(60);
// The floats of a message are sent before it: once it is here they are too, or nearly.
constexpr auto kBulkTimeout = std::chrono::seconds(3);

struct LinkState {
  LinkState() = default;  // user-declared: CAF 0.17 under C++20 (docs/dependencies.md)
  NodeAddress to;
  int first_layer = -1;  // the stage the link carries to; -1: a watch link
  std::string what;      // what it leads to: "the stage after layers 0-2"
  std::shared_ptr<ClusterHealth> health;
  std::shared_ptr<Bulk> bulk;  // this process's data plane, if it has one
  // A watch link that copies what the node reports: its problems go to `health`, its memory
  // here. None: it records only whether the node answers.
  std::shared_ptr<ClusterMemory> memory;

  node_actor node;        // while connected
  int bulk_peer = -1;     // while connected, to a node with a data plane
  llm_stage_actor stage;  // while connected, for a stage link
  bool connecting = false;
  std::uint64_t epoch = 0;  // one per connection: answers from an earlier one are dropped
  std::string problem;      // why the link is not up; empty while it is
  std::optional<KvLayout> kv;  // the KV cache asked for

  // Forwards waiting for the stages after the link, failed when the node is lost: one in a
  // process that died or stopped never answers.
  std::map<std::uint64_t, caf::typed_response_promise<StageLogits>> waiting;
  std::uint64_t next_id = 0;

  bool watch() const { return first_layer < 0; }
  std::string key() const { return watch() ? "node " + to.node : "link to " + what + " on " + to.describe(); }
  std::string unavailable() const {
    return what + " (layer " + std::to_string(first_layer) + " on " + to.describe() + ") is unavailable: " + problem;
  }
};
using LinkPointer = node_link_actor::stateful_pointer<LinkState>;

std::string waiting_text(const NodeAddress& to) { return "waiting for " + to.describe() + " to join"; }

void record(LinkState& st, std::string problem) {
  st.problem = std::move(problem);
  st.health->set(st.key(), st.problem.empty() || st.watch() ? st.problem : st.unavailable());
}
void record(LinkPointer self, std::string problem) { record(self->state, std::move(problem)); }

// The node is lost: fail what waits on it, forget it, and try again at the next tick.
void lose(LinkPointer self, std::string why) {
  auto& st = self->state;
  ++st.epoch;
  if (st.node) self->demonitor(caf::actor_cast<caf::actor_addr>(st.node));
  if (st.stage) self->demonitor(caf::actor_cast<caf::actor_addr>(st.stage));
  st.node = nullptr;
  st.stage = nullptr;
  st.bulk_peer = -1;
  st.connecting = false;
  record(self, st.to.describe() + " " + why);
  if (st.memory) st.memory->forget(st.to.node);  // a lost node's memory is unknown
  for (auto& [id, promise] : st.waiting) promise.deliver(caf::make_error(caf::sec::runtime_error, st.unavailable()));
  st.waiting.clear();
}

void heartbeat(LinkPointer self);

void up(LinkPointer self, node_actor node, llm_stage_actor stage) {
  auto& st = self->state;
  st.connecting = false;
  st.node = std::move(node);
  st.stage = std::move(stage);
  self->monitor(st.node);
  if (st.stage) self->monitor(st.stage);
  if (st.watch())
    heartbeat(self);  // the node is well once it says so: its own links may still wait for others
  else
    record(self, "");
}

// Stage links move the floats over the data planes when both processes have one.
void connect_bulk(LinkPointer self, node_actor node, llm_stage_actor stage, std::uint64_t epoch) {
  if (!self->state.bulk) return up(self, node, stage);
  self->request(node, kConnectTimeout, data_plane_atom::value)
      .then(
          [=](std::string& host, std::int32_t port) {
            auto& st = self->state;
            if (st.epoch != epoch) return;
            if (port > 0) {
              try {
                st.bulk_peer = st.bulk->connect(host, port);
              } catch (const std::exception&) {
                st.bulk_peer = -1;  // the floats go inside the messages
              }
            }
            up(self, node, stage);
          },
          [=](caf::error&) {
            if (self->state.epoch == epoch) up(self, node, stage);
          });
}

void connect_stage(LinkPointer self, node_actor node, std::uint64_t epoch) {
  auto failed = [=](caf::error& e) {
    if (self->state.epoch == epoch) lose(self, "has no stage at layer " + std::to_string(self->state.first_layer) +
                                                   " ready: " + self->system().render(e));
  };
  self->request(node, kConnectTimeout, stage_atom::value, std::int32_t(self->state.first_layer))
      .then(
          [=](llm_stage_actor& stage) {
            if (self->state.epoch != epoch) return;
            const auto kv = self->state.kv;
            if (!kv) return connect_bulk(self, node, stage, epoch);
            // A stage that (re)joined has no KV cache yet: it gets the one asked of the old one.
            self->request(stage, kKvTimeout, kv_cache_atom::value, *kv)
                .then(
                    [=](std::uint64_t) {
                      if (self->state.epoch == epoch) connect_bulk(self, node, stage, epoch);
                    },
                    failed);
          },
          failed);
}

void connect(LinkPointer self) {
  self->state.connecting = true;
  const std::uint64_t epoch = self->state.epoch;
  const NodeAddress& to = self->state.to;
  self->request(self->system().middleman().actor_handle(), kConnectTimeout, caf::connect_atom::value, to.host,
                std::uint16_t(to.port))
      .then(
          [=](caf::node_id&, caf::strong_actor_ptr& published, std::set<std::string>&) {
            if (self->state.epoch != epoch) return;
            auto node = caf::actor_cast<node_actor>(published);
            if (!node) return lose(self, "serves no banyan node on its port");
            if (self->state.watch()) return up(self, node, llm_stage_actor{});
            connect_stage(self, node, epoch);
          },
          [=](caf::error& e) {
            if (self->state.epoch == epoch) lose(self, "cannot be reached: " + self->system().render(e));
          });
}

void ask_memory(LinkPointer self) {
  const std::uint64_t epoch = self->state.epoch;
  self->request(self->state.node, kHeartbeatTimeout, memory_atom::value)
      .then(
          [=](MemoryReport& report) {
            if (self->state.epoch == epoch) self->state.memory->set(self->state.to.node, report);
          },
          [](caf::error&) {});  // a node that stopped answering is the heartbeat's to find
}

void heartbeat(LinkPointer self) {
  const std::uint64_t epoch = self->state.epoch;
  self->request(self->state.node, kHeartbeatTimeout, health_atom::value)
      .then(
          [=](std::vector<std::string>& problems) {
            auto& st = self->state;
            if (st.epoch != epoch || !st.watch()) return;
            if (!st.memory) return record(self, "");
            std::string report;
            for (const auto& p : problems) report += (report.empty() ? st.to.describe() + " reports: " : "; ") + p;
            record(self, report);
            ask_memory(self);
          },
          [=](caf::error& e) {
            if (self->state.epoch == epoch)
              lose(self, "stopped answering heartbeats (" + self->system().render(e) + ")");
          });
}

node_link_actor::behavior_type node_link(LinkPointer self, NodeAddress to, int first_layer, std::string what,
                                         std::shared_ptr<ClusterHealth> health, std::shared_ptr<Bulk> bulk,
                                         std::shared_ptr<ClusterMemory> memory) {
  auto& init = self->state;
  init.bulk = std::move(bulk);
  init.memory = std::move(memory);
  init.to = std::move(to);
  init.first_layer = first_layer;
  init.what = std::move(what);
  init.health = std::move(health);
  record(self, waiting_text(init.to));
  self->set_down_handler([=](caf::down_msg& down) {
    auto& st = self->state;
    const bool ours = down.source == caf::actor_cast<caf::actor_addr>(st.node) ||
                      (st.stage && down.source == caf::actor_cast<caf::actor_addr>(st.stage));
    if (ours) lose(self, "went away (" + self->system().render(down.reason) + ")");
  });
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        auto& st = self->state;
        if (st.node)
          heartbeat(self);
        else if (!st.connecting)
          connect(self);
        self->delayed_send(self, kHeartbeatEvery, tick_atom::value);
      },
      [=](StageForward& f) -> caf::result<StageLogits> {
        auto& st = self->state;
        if (!st.stage) return caf::make_error(caf::sec::runtime_error, st.unavailable());
        const std::uint64_t id = st.next_id++;
        auto promise = self->make_response_promise<StageLogits>();
        st.waiting.emplace(id, promise);
        auto answer = [=](auto result) {
          auto it = self->state.waiting.find(id);
          if (it == self->state.waiting.end()) return;  // already failed: the node was lost
          it->second.deliver(std::move(result));
          self->state.waiting.erase(it);
        };
        f.bulk.tag = 0;  // the activations go inside the message unless the data plane takes them
        std::uint64_t expected = 0;  // the logits' tag when they come to this process's data plane
        if (st.bulk_peer >= 0) {
          if (f.bulk.reply_tag == 0) {  // the first link with a data plane: the logits come here
            expected = st.bulk->new_tag() | (std::uint64_t(1) << 63);
            f.bulk.reply_host = st.bulk->host();
            f.bulk.reply_port = st.bulk->port();
            f.bulk.reply_instance = st.bulk->instance();
            f.bulk.reply_tag = expected;
          }
          if (!f.activations.empty()) {
            f.bulk.tag = st.bulk->new_tag();
            st.bulk->send(st.bulk_peer, f.bulk.tag, std::exchange(f.activations, {}));
          }
        }
        self->request(st.stage, caf::infinite, std::move(f))
            .then(
                [=](StageLogits& logits) {
                  // Logits for a process before this one pass on untouched.
                  if (expected == 0 || logits.bulk_tag != expected) return answer(std::move(logits));
                  try {
                    logits.logits = self->state.bulk->receive(logits.bulk_tag, kBulkTimeout);
                  } catch (const std::exception& e) {
                    return answer(caf::make_error(caf::sec::runtime_error, "the logits from " + self->state.to.describe() +
                                                                               ": " + e.what()));
                  }
                  answer(std::move(logits));
                },
                [=](caf::error& e) { answer(std::move(e)); });
        return promise;
      },
      [=](kv_cache_atom a, const KvLayout& layout) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        st.kv = layout;
        if (!st.stage) return caf::make_error(caf::sec::runtime_error, st.unavailable());
        return self->delegate(st.stage, a, layout);
      },
      [=](layers_atom a) -> caf::result<std::int32_t, std::int32_t> {
        if (!self->state.stage) return caf::make_error(caf::sec::runtime_error, self->state.unavailable());
        return self->delegate(self->state.stage, a);
      },
  };
}

// Starts a link; its node counts as missing from now on, not from when the new actor first
// runs (a scheduler thread does that later: a wait for the nodes to join could miss it).
node_link_actor spawn_link(caf::actor_system& system, NodeAddress to, int first_layer, std::string what,
                           std::shared_ptr<ClusterHealth> health, std::shared_ptr<Bulk> bulk,
                           std::shared_ptr<ClusterMemory> memory = nullptr) {
  LinkState expected;
  expected.to = to;
  expected.first_layer = first_layer;
  expected.what = what;
  expected.health = health;
  record(expected, waiting_text(to));
  return system.spawn(node_link, std::move(to), first_layer, std::move(what), std::move(health), std::move(bulk),
                      std::move(memory));
}

}  // namespace

node_link_actor spawn_stage_link(caf::actor_system& system, NodeAddress to, int first_layer, std::string what,
                                 std::shared_ptr<ClusterHealth> health, std::shared_ptr<Bulk> bulk) {
  return spawn_link(system, std::move(to), first_layer, std::move(what), std::move(health), std::move(bulk));
}

node_link_actor spawn_node_watch(caf::actor_system& system, NodeAddress to, std::shared_ptr<ClusterHealth> health,
                                 std::shared_ptr<ClusterMemory> memory) {
  return spawn_link(system, std::move(to), -1, std::string(), std::move(health), nullptr, std::move(memory));
}

node_link_actor spawn_node_heartbeat(caf::actor_system& system, NodeAddress to, std::shared_ptr<ClusterHealth> health) {
  return spawn_link(system, std::move(to), -1, std::string(), std::move(health), nullptr);
}

}  // namespace banyan::actors
