#pragma once
// A small synchronous client for Banyan's HTTP and websocket API (Boost.Beast), for the tests,
// the load benchmark and scripts. Every call has a deadline; a silent server is an error, not
// a hang.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace banyan::testkit {

using namespace std::chrono_literals;

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// One request on a fresh connection; the whole answer (a server-sent event stream included:
// it ends when the server closes the connection). Throws std::runtime_error on network errors.
HttpResponse http_request(const std::string& host, int port, const std::string& method, const std::string& target,
                          const std::string& body = "", const std::string& api_key = "",
                          std::chrono::milliseconds timeout = 120s);

// Sends raw bytes on a fresh connection and returns whatever comes back until the server closes.
std::string raw_exchange(const std::string& host, int port, const std::string& bytes,
                         std::chrono::milliseconds timeout = 30s);

// The `data:` payloads of a server-sent event stream, in order.
std::vector<std::string> sse_events(const std::string& body);

class WebSocket {
 public:
  // Connects and upgrades; throws std::runtime_error (with the HTTP status when refused).
  WebSocket(const std::string& host, int port, const std::string& target = "/v1/stream",
            const std::string& api_key = "");
  ~WebSocket();
  void send(const std::string& text);
  // The next text frame; throws when none comes within `timeout` or the socket closes.
  std::string receive(std::chrono::milliseconds timeout = 120s);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::testkit
