#include "server/api.hpp"

#include <cmath>
#include <functional>
#include <map>

namespace banyan::server {

namespace {

using nlohmann::json;

ApiError bad(const std::string& code, const std::string& message) { return ApiError(400, code, message); }

// Reads the fields of one JSON object by name, each with its own parser; any other field is an
// error naming the ones that exist (a misspelt option silently ignored is an option lost).
class Fields {
 public:
  using Reader = std::function<void(const json&)>;
  Fields& on(const std::string& name, Reader read) {
    readers_.emplace(name, std::move(read));
    return *this;
  }
  void read(const json& object) const {
    if (!object.is_object()) throw bad("invalid_request", "the request must be a JSON object");
    for (const auto& [name, value] : object.items()) {
      auto it = readers_.find(name);
      if (it == readers_.end()) {
        std::string known;
        for (const auto& r : readers_) known += (known.empty() ? "" : ", ") + r.first;
        throw bad("unknown_field", "unknown field '" + name + "' (expected: " + known + ")");
      }
      if (!value.is_null()) it->second(value);
    }
  }

 private:
  std::map<std::string, Reader> readers_;
};

double number(const json& v, const std::string& name, double lo, double hi) {
  if (!v.is_number()) throw bad("invalid_field", "'" + name + "' must be a number");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw bad("out_of_range", "'" + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump() +
                                  ", got " + v.dump());
  return x;
}

long long integer(const json& v, const std::string& name, long long lo, long long hi) {
  if (!v.is_number_integer()) throw bad("invalid_field", "'" + name + "' must be an integer");
  const long long x = v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(hi) ? hi + 1 : v.get<long long>();
  if (x < lo || x > hi)
    throw bad("out_of_range", "'" + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                  ", got " + v.dump());
  return x;
}

std::string text(const json& v, const std::string& name) {
  if (!v.is_string()) throw bad("invalid_field", "'" + name + "' must be a string");
  return v.get<std::string>();
}

std::vector<std::string> stop_list(const json& v) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& s : v) out.push_back(text(s, "stop"));
  } else {
    throw bad("invalid_field", "'stop' must be a string or a list of strings");
  }
  if (out.size() > 4) throw bad("out_of_range", "'stop' may hold at most 4 strings");
  for (const auto& s : out)
    if (s.empty()) throw bad("out_of_range", "'stop' strings must not be empty");
  return out;
}

// The fields both APIs share, with the websocket's names for the length.
Fields sampling_fields(TextRequest& r, const ApiLimits& limits, const std::string& length_name) {
  Fields f;
  f.on("prompt", [&r](const json& v) { r.prompt = text(v, "prompt"); })
      .on(length_name, [&r, &limits, length_name](const json& v) {
        r.max_new_tokens = int(integer(v, length_name, 1, limits.max_new_tokens));
      })
      .on("temperature", [&r](const json& v) { r.temperature = float(number(v, "temperature", 0, 2)); })
      .on("top_p", [&r](const json& v) {
        r.top_p = float(number(v, "top_p", 0, 1));
        if (r.top_p <= 0) throw bad("out_of_range", "'top_p' must be above 0");
      })
      .on("top_k", [&r](const json& v) { r.top_k = int(integer(v, "top_k", 0, 1'000'000)); })
      .on("seed", [&r](const json& v) { r.seed = std::uint64_t(integer(v, "seed", 0, (1LL << 53))); })
      .on("stop", [&r](const json& v) { r.stop = stop_list(v); })
      .on("mode", [&r](const json& v) {
        const std::string m = text(v, "mode");
        if (m != "speculative" && m != "incremental")
          throw bad("out_of_range", "'mode' must be \"speculative\" or \"incremental\", got \"" + m + "\"");
        r.speculate = m == "speculative";
      });
  return f;
}

void check_prompt(const TextRequest& r) {
  if (r.prompt.empty()) throw bad("empty_prompt", "'prompt' is required and must not be empty");
}

}  // namespace

std::string error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 503: return "server_overloaded_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

json error_body(const ApiError& e) {
  return {{"error", {{"message", e.what()}, {"type", error_type(e.status)}, {"code", e.code}}}};
}

json parse_json(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw bad("invalid_json", std::string("not valid JSON: ") + e.what());
  }
}

bool is_cancel_frame(const json& frame) {
  return frame.is_object() && frame.contains("type") && frame["type"] == "cancel";
}

std::string frame_request_id(const json& frame) {
  if (!frame.is_object() || !frame.contains("request_id") || frame["request_id"].is_null()) return "";
  const json& id = frame["request_id"];
  if (id.is_string()) return id.get<std::string>();
  if (id.is_number_integer()) return id.dump();
  throw bad("invalid_field", "'request_id' must be a string or an integer");
}

TextRequest parse_stream_request(const json& frame, const ApiLimits& limits) {
  TextRequest r;
  Fields f = sampling_fields(r, limits, "max_new_tokens");
  f.on("request_id", [&r, &frame](const json&) { r.request_id = frame_request_id(frame); })
      .on("type", [](const json& v) {
        if (v != "generate") throw bad("invalid_field", "'type' must be \"generate\" or \"cancel\", got " + v.dump());
      });
  f.read(frame);
  check_prompt(r);
  return r;
}

TextRequest parse_completion_request(const json& body, const ApiLimits& limits, const std::string& model) {
  TextRequest r;
  r.max_new_tokens = std::min(16, limits.max_new_tokens);  // OpenAI's defaults
  r.temperature = 1;
  Fields f = sampling_fields(r, limits, "max_tokens");
  f.on("model", [&model](const json& v) {
     if (text(v, "model") != model)
       throw ApiError(404, "model_not_found", "the model '" + v.get<std::string>() + "' is not served here (this server serves '" + model + "')");
   })
      .on("stream", [&r](const json& v) {
        if (!v.is_boolean()) throw bad("invalid_field", "'stream' must be true or false");
        r.stream = v.get<bool>();
      })
      .on("n", [](const json& v) { integer(v, "n", 1, 1); })
      .on("user", [](const json& v) { text(v, "user"); })
      .on("echo", [](const json& v) {
        if (v != false) throw bad("unsupported", "'echo' is not supported");
      })
      .on("logprobs", [](const json&) { throw bad("unsupported", "'logprobs' is not supported"); })
      .on("presence_penalty", [](const json& v) { number(v, "presence_penalty", 0, 0); })
      .on("frequency_penalty", [](const json& v) { number(v, "frequency_penalty", 0, 0); });
  f.read(body);
  check_prompt(r);
  return r;
}

}  // namespace banyan::server
