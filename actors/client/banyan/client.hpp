#pragma once
// Banyan's client library: talk to a running `banyan serve --actor-port N` from your own
// program. A Client holds a CAF actor system with its network layer, connects to the server's
// text service, and runs generations: tokens arrive as text pieces through a callback (on the
// client's threads) as soon as the server commits them; each can be cancelled; the blocking
// generate() waits for the end with a deadline.
//
//   banyan::Client client("127.0.0.1", 8081);
//   banyan::GenerationParams params;
//   params.max_new_tokens = 64;
//   auto result = client.generate("Once upon a time", params, [](const std::string& text) {
//     std::cout << text << std::flush;
//   });
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace banyan {

class ClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct GenerationParams {
  int max_new_tokens = 128;
  float temperature = 0;  // 0: greedy
  float top_p = 1;
  int top_k = 0;  // 0: no limit
  std::uint64_t seed = 0;
  bool speculate = true;  // false: incremental decoding even when the server has SSMs
};

struct GenerationResult {
  std::string text;                  // the generated text (the prompt not included)
  std::vector<std::int32_t> tokens;  // its token ids
  std::string finish_reason;         // stop, length, cancelled, error
  std::string error;                 // why it failed, when it did
  int prompt_tokens = 0;
  int llm_steps = 0;
  double accepted_per_step = 0;
};

class Client {
 public:
  // Connects to the actor port of a `banyan serve`; throws ClientError when nothing answers.
  Client(const std::string& host, int port);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  using OnText = std::function<void(const std::string& text)>;
  using OnDone = std::function<void(const GenerationResult& result)>;

  // Starts a generation and returns its id at once; `on_text` gets each piece of text as it
  // comes, then `on_done` runs once with everything. Both run on the client's threads.
  std::uint64_t submit(const std::string& prompt, const GenerationParams& params, OnText on_text, OnDone on_done);
  // Stops a generation; its on_done still runs, with finish_reason "cancelled".
  void cancel(std::uint64_t generation);

  // Runs one generation to its end, passing each piece of text to `on_text` on the way. After
  // `timeout` it cancels the generation and throws ClientError.
  GenerationResult generate(const std::string& prompt, const GenerationParams& params, OnText on_text = {},
                            std::chrono::milliseconds timeout = std::chrono::minutes(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan
