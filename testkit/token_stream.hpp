#pragma once
// Reading a generation off a /v1/stream websocket, for the tests that compare a server's text
// with `banyan generate`'s.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "testkit/http_client.hpp"

namespace banyan::testkit {

struct Streamed {
  std::string text;
  int token_frames = 0;
  nlohmann::json done;  // the done frame, or the error frame
};

// Reads frames of `request_id` until its done (or error) frame; other requests' frames go to
// `others` when given.
Streamed read_stream(WebSocket& ws, const std::string& request_id, std::vector<nlohmann::json>* others = nullptr);

// One greedy generation of `tokens` tokens in `mode` on a fresh connection.
Streamed stream_generation(const std::string& host, int port, const std::string& prompt, int tokens,
                           const std::string& mode);

}  // namespace banyan::testkit
