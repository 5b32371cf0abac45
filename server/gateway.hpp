#pragma once
// The gateway: Banyan's HTTP and websocket API on top of the serving runtime. It turns requests
// into generations, their tokens into websocket frames, server-sent events or one JSON reply,
// checks API keys, and keeps the metrics. No sockets here: http_server.cpp carries the bytes
// and calls in through the Exchange and FrameSink below. Everything runs on the one network
// thread; the runtime's callbacks are moved onto it through `post`.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "actors/generations.hpp"
#include "model/tokenizer.hpp"
#include "server/api.hpp"
#include "server/metrics.hpp"

namespace banyan::server {

struct GatewayOptions {
  std::string model_name;  // what /v1/models lists and `model` must name
  ApiLimits limits;
  std::vector<std::string> api_keys;  // empty: no authentication
  std::string web_page;               // the HTML served at "/", empty: none
  // What each node's memory holds (this one's, and on a cluster's head the others'), for
  // /metrics; empty: not shown. Called on the network thread.
  std::function<std::vector<NodeMemory>()> memory;
  // A cluster node's data plane traffic, for /metrics; empty: none. Called on the network thread.
  std::function<DataPlaneBytes()> data_plane_bytes;
  // What keeps the model from serving now (a pipeline stage's node gone or silent), one line each;
  // empty: nothing. While there is something, /health says "degraded" and new generations are
  // refused with 503 at once. Called on the network thread; empty function: never degraded.
  std::function<std::vector<std::string>()> problems;
};

struct HttpRequest {
  std::string method;  // GET, POST, ...
  std::string target;  // path and query
  std::string body;
  std::string authorization;  // the Authorization header
};

// One HTTP request's answer: a whole body, or a stream of pieces (server-sent events).
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void reply(int status, const std::string& content_type, std::string body) = 0;
  virtual void open_stream(const std::string& content_type) = 0;
  virtual void write(std::string piece) = 0;
  virtual void close_stream() = 0;
  // Set by the gateway; the transport calls it when the client goes away mid-stream.
  std::function<void()> on_abandon;
};

// Where a websocket connection's frames go.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void send(std::string frame) = 0;
};

// The end of one generation, as the API reports it.
struct GenerationSummary {
  std::string finish_reason;  // stop, length, cancelled, error
  std::string error;
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;  // found in the prefix cache
  int completion_tokens = 0;
  int llm_steps = 0;
  double accepted_per_step = 0;
  double seconds = 0;  // arrival to end
  double time_to_first_token_s = 0;
};

class Gateway {
 public:
  using Post = std::function<void(std::function<void()>)>;
  Gateway(actors::Generations& generations, const Tokenizer& tokenizer, const actors::SchedulerGauges& gauges,
          GatewayOptions options, Post post);
  ~Gateway();

  void handle(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange);

  // Why a websocket upgrade to `target` is refused (wrong path, missing or wrong key), if it is.
  std::optional<ApiError> stream_refusal(const std::string& target, const std::string& authorization) const;
  // A websocket at /v1/stream, once accepted.
  class Connection;
  std::shared_ptr<Connection> open_stream(std::weak_ptr<FrameSink> sink);

  // Refuses new generations from now on (503); running ones go on.
  void begin_shutdown() { draining_ = true; }
  void cancel_all();
  std::size_t running() const { return runs_.size(); }

 private:
  struct Run;
  using TokenEvent = std::function<void(std::int32_t id, const std::string& text)>;
  using DoneEvent = std::function<void(const GenerationSummary&)>;
  // Starts a generation whose text and end go to the two events; throws ApiError when refused.
  std::uint64_t start(const TextRequest& request, TokenEvent token_event, DoneEvent done_event);
  void cancel(std::uint64_t run);
  void on_tokens(const std::shared_ptr<Run>& run, const std::vector<std::int32_t>& tokens);
  void on_done(const std::shared_ptr<Run>& run, const actors::RequestDone& done);

  bool authorized(const std::string& target, const std::string& authorization) const;
  void completions(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange);
  void reject(const ApiError& e, const std::shared_ptr<Exchange>& exchange);

  actors::Generations& generations_;
  const Tokenizer& tokenizer_;
  const actors::SchedulerGauges& gauges_;
  GatewayOptions options_;
  Post post_;
  ServerMetrics metrics_;
  std::map<std::uint64_t, std::shared_ptr<Run>> runs_;  // by the runtime's generation handle
  bool draining_ = false;
  std::uint64_t next_completion_ = 1;
  friend class Connection;
};

// One websocket connection: its frames in, several named generations streaming out.
class Gateway::Connection : public std::enable_shared_from_this<Gateway::Connection> {
 public:
  Connection(Gateway& gateway, std::weak_ptr<FrameSink> sink) : gateway_(gateway), sink_(std::move(sink)) {}
  void on_frame(const std::string& text);
  // The socket closed: its generations are cancelled.
  void on_close();

 private:
  void error(const std::string& request_id, const ApiError& e);
  void send(const nlohmann::json& frame);
  Gateway& gateway_;
  std::weak_ptr<FrameSink> sink_;  // the socket owns the connection, not the other way round
  std::map<std::string, std::uint64_t> running_;  // request_id -> generation
  std::uint64_t next_id_ = 1;
};

}  // namespace banyan::server
