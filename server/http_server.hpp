#pragma once
// The network side of the gateway (Boost.Beast): one thread accepts HTTP connections on a port,
// upgrades /v1/stream to websockets, carries requests to the Gateway and its answers back, and
// stops gracefully on SIGTERM or SIGINT. Beast stays inside http_server.cpp (it compiles slowly).
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "server/gateway.hpp"

namespace banyan::server {

class HttpServer {
 public:
  // Binds host:port (port 0: any free port); throws Error naming the address when it cannot.
  HttpServer(const std::string& host, int port);
  ~HttpServer();

  int port() const;
  // Runs a closure on the network thread (from any thread).
  Gateway::Post poster();

  // Serves `gateway` until SIGTERM or SIGINT (or stop()), then stops accepting, lets running
  // generations finish for up to `grace`, cancels the rest, waits for their ends, and returns.
  // `on_listening` runs once the server accepts connections.
  void serve(Gateway& gateway, std::chrono::milliseconds grace, const std::function<void()>& on_listening);
  // Starts the graceful stop as a signal would (from any thread).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::server
