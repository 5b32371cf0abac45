#include "server/gateway.hpp"

#include <ctime>

#include "server/text_stream.hpp"

namespace banyan::server {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

json usage(const GenerationSummary& s) {
  return {{"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"total_tokens", s.prompt_tokens + s.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", s.cached_prompt_tokens}}}};
}

std::string query_value(const std::string& target, const std::string& key) {
  const auto q = target.find('?');
  if (q == std::string::npos) return "";
  std::size_t at = q + 1;
  while (at < target.size()) {
    const auto end = std::min(target.find('&', at), target.size());
    const std::string pair = target.substr(at, end - at);
    if (pair.rfind(key + "=", 0) == 0) return pair.substr(key.size() + 1);
    at = end + 1;
  }
  return "";
}

std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

}  // namespace

// One generation on its way: its text, its timing, and where its events go.
struct Gateway::Run {
  Run(const Tokenizer& tokenizer, std::vector<std::string> stop) : text(tokenizer, std::move(stop)) {}
  std::uint64_t handle = 0;
  TextStream text;
  TokenEvent on_token;
  DoneEvent on_done;
  int prompt_tokens = 0;
  Clock::time_point arrived = Clock::now();
  Clock::time_point last_tokens;
  double time_to_first_token_s = 0;
  bool cancelled = false;  // by the client (a stop string is not a cancel)
};

Gateway::Gateway(actors::Generations& generations, const Tokenizer& tokenizer, const actors::SchedulerGauges& gauges,
                 GatewayOptions options, Post post)
    : generations_(generations), tokenizer_(tokenizer), gauges_(gauges), options_(std::move(options)),
      post_(std::move(post)) {}

Gateway::~Gateway() = default;

std::uint64_t Gateway::start(const TextRequest& request, TokenEvent token_event, DoneEvent done_event) {
  try {
    if (draining_) throw ApiError(503, "shutting_down", "the server is shutting down and takes no new requests");
    if (options_.problems)
      if (const auto problems = options_.problems(); !problems.empty())
        throw ApiError(503, "unavailable", "the model cannot serve now: " + problems.front());
    actors::GenerateRequest g;
    g.prompt = tokenizer_.encode(request.prompt);
    if (int(g.prompt.size()) > options_.limits.max_prompt_tokens)
      throw ApiError(400, "prompt_too_long",
                     "the prompt is " + std::to_string(g.prompt.size()) + " tokens; this server takes at most " +
                         std::to_string(options_.limits.max_prompt_tokens));
    g.max_new_tokens = request.max_new_tokens;
    g.temperature = request.temperature;
    g.top_p = request.top_p;
    g.top_k = request.top_k;
    g.seed = request.seed;
    g.speculate = request.speculate;

    auto run = std::make_shared<Run>(tokenizer_, request.stop);
    run->on_token = std::move(token_event);
    run->on_done = std::move(done_event);
    run->prompt_tokens = int(g.prompt.size());
    metrics_.prompt_tokens += run->prompt_tokens;
    // The callbacks come on runtime threads; the run is only touched on the network thread.
    run->handle = generations_.start(
        std::move(g), [this, run](std::vector<std::int32_t> t) { post_([this, run, t] { on_tokens(run, t); }); },
        [this, run](actors::RequestDone d) { post_([this, run, d] { on_done(run, d); }); });
    runs_.emplace(run->handle, run);
    return run->handle;
  } catch (const ApiError& e) {
    ++metrics_.rejected[e.code];
    throw;
  }
}

void Gateway::cancel(std::uint64_t handle) {
  auto it = runs_.find(handle);
  if (it == runs_.end()) return;
  it->second->cancelled = true;
  generations_.cancel(handle);
}

void Gateway::cancel_all() {
  for (const auto& [handle, run] : runs_) cancel(handle);
}

void Gateway::on_tokens(const std::shared_ptr<Run>& run, const std::vector<std::int32_t>& tokens) {
  if (run->text.stopped() || tokens.empty()) return;
  const auto now = Clock::now();
  if (run->text.tokens() == 0) {
    run->time_to_first_token_s = std::chrono::duration<double>(now - run->arrived).count();
    metrics_.time_to_first_token_s.observe(run->time_to_first_token_s);
  } else {
    // A step commits several tokens at once: each gets its share of the wait.
    const double each = std::chrono::duration<double>(now - run->last_tokens).count() / double(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) metrics_.inter_token_latency_s.observe(each);
  }
  run->last_tokens = now;
  for (std::int32_t t : tokens) {
    std::string piece = run->text.push(t);
    ++metrics_.generated_tokens;
    run->on_token(t, piece);
    if (run->text.stopped()) {
      generations_.cancel(run->handle);  // a stop string ends it here: the rest is not wanted
      break;
    }
  }
}

void Gateway::on_done(const std::shared_ptr<Run>& run, const actors::RequestDone& done) {
  runs_.erase(run->handle);
  if (!run->text.stopped()) {
    std::string rest = run->text.finish();
    if (!rest.empty()) run->on_token(-1, rest);  // held-back text of the last tokens
  }
  GenerationSummary s;
  s.finish_reason = run->text.stopped() ? "stop" : run->cancelled ? "cancelled" : done.finish_reason;
  s.error = done.error;
  s.prompt_tokens = run->prompt_tokens;
  s.cached_prompt_tokens = done.cached_prompt_tokens;
  s.completion_tokens = run->text.tokens();
  s.llm_steps = done.llm_steps;
  s.accepted_per_step = done.accepted_per_step;
  s.seconds = since(run->arrived);
  s.time_to_first_token_s = run->time_to_first_token_s;
  ++metrics_.requests[s.finish_reason];
  if (done.llm_steps > 0) metrics_.accepted_per_step.observe(done.accepted_per_step);
  run->on_done(s);
}

bool Gateway::authorized(const std::string& target, const std::string& authorization) const {
  if (options_.api_keys.empty()) return true;
  std::string key = query_value(target, "api_key");  // browsers cannot set headers on a websocket
  if (authorization.rfind("Bearer ", 0) == 0) key = authorization.substr(7);
  for (const auto& k : options_.api_keys)
    if (k == key) return true;
  return false;
}

void Gateway::reject(const ApiError& e, const std::shared_ptr<Exchange>& exchange) {
  exchange->reply(e.status, "application/json", error_body(e).dump());
}

void Gateway::handle(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
  const std::string path = path_of(request.target);
  const bool get = request.method == "GET", post = request.method == "POST";
  try {
    if (path == "/health") {
      if (!get) throw ApiError(405, "method_not_allowed", "use GET " + path);
      const auto problems = options_.problems ? options_.problems() : std::vector<std::string>{};
      const char* status = draining_ ? "shutting_down" : problems.empty() ? "ok" : "degraded";
      json body{{"status", status}, {"running", runs_.size()}};
      if (!problems.empty()) body["problems"] = problems;
      return exchange->reply(200, "application/json", body.dump());
    }
    if (path == "/" || path == "/index.html") {
      if (options_.web_page.empty()) throw ApiError(404, "not_found", "no web page is served here");
      if (!get) throw ApiError(405, "method_not_allowed", "use GET " + path);
      return exchange->reply(200, "text/html; charset=utf-8", options_.web_page);
    }
    const bool known = path == "/v1/models" || path == "/metrics" || path == "/v1/completions" || path == "/v1/stream";
    if (!known) throw ApiError(404, "not_found", "no such endpoint: " + path);
    if (!authorized(request.target, request.authorization))
      throw ApiError(401, "invalid_api_key", "a valid API key is required (Authorization: Bearer KEY)");
    if (path == "/v1/models") {
      if (!get) throw ApiError(405, "method_not_allowed", "use GET " + path);
      json model = {{"id", options_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "banyan"}};
      return exchange->reply(200, "application/json", json{{"object", "list"}, {"data", {model}}}.dump());
    }
    if (path == "/metrics") {
      if (!get) throw ApiError(405, "method_not_allowed", "use GET " + path);
      const std::vector<NodeMemory> memory = options_.memory ? options_.memory() : std::vector<NodeMemory>{};
      const DataPlaneBytes plane = options_.data_plane_bytes ? options_.data_plane_bytes() : DataPlaneBytes{};
      return exchange->reply(200, "text/plain; version=0.0.4",
                             metrics_.render(gauges_, runs_.size(),
                                             {options_.memory ? &memory : nullptr,
                                              options_.data_plane_bytes ? &plane : nullptr}));
    }
    if (path == "/v1/stream") throw ApiError(400, "websocket_required", "/v1/stream is a websocket endpoint");
    if (!post) throw ApiError(405, "method_not_allowed", "use POST " + path);
    completions(request, exchange);
  } catch (const ApiError& e) {
    reject(e, exchange);
  }
}

void Gateway::completions(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
  const TextRequest r = parse_completion_request(parse_json(request.body), options_.limits, options_.model_name);
  const json head = {{"id", "cmpl-" + std::to_string(next_completion_++)},
                     {"object", "text_completion"},
                     {"created", std::time(nullptr)},
                     {"model", options_.model_name}};
  auto chunk = [head](const std::string& text, const json& finish_reason) {
    json c = head;
    c["choices"] = json::array({{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}}});
    return c;
  };
  if (r.stream) {
    const std::uint64_t handle = start(
        r,
        [exchange, chunk](std::int32_t, const std::string& text) {
          if (!text.empty()) exchange->write("data: " + chunk(text, nullptr).dump() + "\n\n");
        },
        [exchange, chunk](const GenerationSummary& s) {
          if (s.finish_reason == "error") {
            exchange->write("data: " + error_body(ApiError(500, "generation_failed", s.error)).dump() + "\n\n");
          } else {
            json last = chunk("", s.finish_reason);
            last["usage"] = usage(s);
            exchange->write("data: " + last.dump() + "\n\n");
          }
          exchange->write("data: [DONE]\n\n");
          exchange->close_stream();
        });
    exchange->on_abandon = [this, handle] { cancel(handle); };
    exchange->open_stream("text/event-stream");
    return;
  }
  auto text = std::make_shared<std::string>();
  start(
      r, [text](std::int32_t, const std::string& piece) { *text += piece; },
      [this, exchange, chunk, text](const GenerationSummary& s) {
        if (s.finish_reason == "error") return reject(ApiError(500, "generation_failed", s.error), exchange);
        json body = chunk(*text, s.finish_reason);
        body["usage"] = usage(s);
        exchange->reply(200, "application/json", body.dump());
      });
}

std::optional<ApiError> Gateway::stream_refusal(const std::string& target, const std::string& authorization) const {
  if (path_of(target) != "/v1/stream") return ApiError(404, "not_found", "websockets are served at /v1/stream");
  if (!authorized(target, authorization))
    return ApiError(401, "invalid_api_key", "a valid API key is required (Authorization: Bearer KEY or ?api_key=KEY)");
  return std::nullopt;
}

std::shared_ptr<Gateway::Connection> Gateway::open_stream(std::weak_ptr<FrameSink> sink) {
  return std::make_shared<Connection>(*this, std::move(sink));
}

void Gateway::Connection::send(const json& frame) {
  if (auto sink = sink_.lock()) sink->send(frame.dump());  // else the socket is gone
}

void Gateway::Connection::error(const std::string& request_id, const ApiError& e) {
  json frame = {{"type", "error"}, {"code", e.code}, {"message", e.what()}};
  if (!request_id.empty()) frame["request_id"] = request_id;
  send(frame);
}

void Gateway::Connection::on_frame(const std::string& text) {
  std::string id;
  try {
    const json frame = parse_json(text);
    id = frame_request_id(frame);
    if (is_cancel_frame(frame)) {
      auto it = running_.find(id);
      if (it == running_.end()) throw ApiError(400, "unknown_request", "no running request '" + id + "' to cancel");
      gateway_.cancel(it->second);
      return;
    }
    TextRequest r = parse_stream_request(frame, gateway_.options_.limits);
    if (r.request_id.empty()) r.request_id = id = std::to_string(next_id_++);
    if (running_.count(r.request_id))
      throw ApiError(400, "duplicate_request_id", "request '" + r.request_id + "' is still running");
    auto self = shared_from_this();
    const std::string rid = r.request_id;
    running_[rid] = gateway_.start(
        r,
        [self, rid](std::int32_t token, const std::string& piece) {
          json out = {{"type", "token"}, {"request_id", rid}, {"text", piece}};
          if (token >= 0) out["id"] = token;
          self->send(out);
        },
        [self, rid](const GenerationSummary& s) {
          self->running_.erase(rid);
          if (s.finish_reason == "error") return self->error(rid, ApiError(500, "generation_failed", s.error));
          const double decode_s = s.seconds - s.time_to_first_token_s;
          json out = {{"type", "done"},
                        {"request_id", rid},
                        {"finish_reason", s.finish_reason},
                        {"usage", usage(s)},
                        {"stats",
                         {{"accepted_per_step", s.accepted_per_step},
                          {"llm_steps", s.llm_steps},
                          {"time_to_first_token_ms", s.time_to_first_token_s * 1000},
                          {"tokens_per_second", decode_s > 0 && s.completion_tokens > 1 ? (s.completion_tokens - 1) / decode_s : 0.0}}}};
          self->send(out);
        });
  } catch (const ApiError& e) {
    error(id, e);
  }
}

void Gateway::Connection::on_close() {
  for (const auto& [id, handle] : running_) gateway_.cancel(handle);
}

}  // namespace banyan::server
