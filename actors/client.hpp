#pragma once
// Serving a model's scheduler to other processes over CAF's own network layer (control-sized
// messages: prompts and tokens), and the client library that uses it.
#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "actors/interfaces.hpp"

namespace banyan::actors {

// Adds what remote use needs to an actor system's configuration: the message types and CAF's
// network layer.
void configure_for_network(caf::actor_system_config& config);

// Makes `scheduler` reachable at host:port (port 0: any free one). Returns the port; throws
// Error with the reason when it cannot bind.
std::uint16_t publish_scheduler(caf::actor_system& system, const scheduler_actor& scheduler, std::uint16_t port,
                                const std::string& host = "127.0.0.1");

// A connection to a scheduler published by another process (or node).
class Client {
 public:
  // Throws Error naming host:port when nothing answers there.
  Client(caf::actor_system& system, const std::string& host, std::uint16_t port);

  struct Result {
    std::vector<std::int32_t> tokens;
    RequestDone done;
  };
  using TokenCallback = std::function<void(std::span<const std::int32_t>)>;
  // Runs one generation, calling `on_tokens` as tokens arrive. A request that sees no message
  // for `silence` ends with finish_reason "error" (and is cancelled on the server).
  Result generate(GenerateRequest request, const TokenCallback& on_tokens = {},
                  std::chrono::seconds silence = std::chrono::seconds(60));

 private:
  caf::actor_system& system_;
  scheduler_actor scheduler_;
  std::string address_;
};

}  // namespace banyan::actors
