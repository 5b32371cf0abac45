#include "testkit/token_stream.hpp"

namespace banyan::testkit {

using nlohmann::json;

Streamed read_stream(WebSocket& ws, const std::string& request_id, std::vector<json>* others) {
  Streamed s;
  for (;;) {
    const json f = json::parse(ws.receive());
    if (f.value("request_id", "") != request_id) {
      if (others) others->push_back(f);
      continue;
    }
    if (f["type"] == "token") {
      s.text += f["text"].get<std::string>();
      s.token_frames += f.contains("id");
    } else {
      s.done = f;
      return s;
    }
  }
}

Streamed stream_generation(const std::string& host, int port, const std::string& prompt, int tokens,
                           const std::string& mode) {
  WebSocket ws(host, port);
  ws.send(json{{"request_id", "r"}, {"prompt", prompt}, {"max_new_tokens", tokens}, {"mode", mode}}.dump());
  return read_stream(ws, "r");
}

}  // namespace banyan::testkit
