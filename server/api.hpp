#pragma once
// Banyan's HTTP and websocket API in JSON: requests parsed and checked against the server's
// limits, errors in OpenAI's shape. No sockets here.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace banyan::server {

// A request the server refuses: the HTTP status, a stable machine code and a sentence for people.
class ApiError : public std::runtime_error {
 public:
  ApiError(int http_status, std::string error_code, const std::string& message)
      : std::runtime_error(message), status(http_status), code(std::move(error_code)) {}
  int status;
  std::string code;
};

// {"error": {"message", "type", "code"}}, as OpenAI's API answers.
nlohmann::json error_body(const ApiError& e);
// OpenAI's error type for an HTTP status ("invalid_request_error", "authentication_error", ...).
std::string error_type(int status);

struct ApiLimits {
  int max_new_tokens = 1024;    // the most one request may ask for
  int max_prompt_tokens = 2047; // the longest prompt that leaves room for a token
};

// One text generation, as the websocket or /v1/completions asks for it.
struct TextRequest {
  std::string request_id;  // websocket: the client's name for it, echoed in every frame
  std::string prompt;
  int max_new_tokens = 64;
  float temperature = 0;
  float top_p = 1;
  int top_k = 0;
  std::uint64_t seed = 1;
  std::vector<std::string> stop;  // the text ends before the first of these
  bool speculate = true;          // "mode": "speculative" (default) or "incremental"
  bool stream = false;            // /v1/completions: server-sent events
};

// Parses a JSON text; a syntax error becomes ApiError 400 "invalid_json".
nlohmann::json parse_json(const std::string& text);

// A websocket frame: {"type": "cancel", "request_id"} or a generation (no type, or "generate").
bool is_cancel_frame(const nlohmann::json& frame);
std::string frame_request_id(const nlohmann::json& frame);  // "" when absent; throws when not a string
TextRequest parse_stream_request(const nlohmann::json& frame, const ApiLimits& limits);

// The body of POST /v1/completions; `model` must be absent or name the served model.
TextRequest parse_completion_request(const nlohmann::json& body, const ApiLimits& limits, const std::string& model);

}  // namespace banyan::server
