// The gateway's threads without the actor runtime: generations that run on threads of their
// own (as the runtime's do) and call back into the gateway while many websocket clients stream,
// one cancels, and the server is stopped from yet another thread. Built under ThreadSanitizer
// in CI (the actor tests cannot be: Debian's CAF is not instrumented).
#define BOOST_TEST_MODULE test_gateway_threads
#include <boost/test/unit_test.hpp>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "server/gateway.hpp"
#include "server/http_server.hpp"
#include "support/test_support.hpp"
#include "testkit/http_client.hpp"

using namespace banyan;
using nlohmann::json;

namespace {

// Each generation on its own thread: it "generates" the prompt's tokens (after BOS) over and
// over, one every millisecond, until max_new_tokens or a cancel.
class ThreadedGenerations final : public actors::Generations {
 public:
  ~ThreadedGenerations() override {
    for (auto& t : threads_) t.join();
  }
  std::uint64_t start(actors::GenerateRequest r, OnTokens on_tokens, OnDone on_done) override {
    std::lock_guard lock(mutex_);
    const std::uint64_t id = next_++;
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    cancels_[id] = cancelled;
    ++running_;
    threads_.emplace_back([this, r, on_tokens, on_done, cancelled] {
      actors::RequestDone d;
      d.prompt_tokens = int(r.prompt.size());
      for (int i = 0; i < r.max_new_tokens && !*cancelled; ++i) {
        on_tokens({r.prompt[1 + std::size_t(i) % (r.prompt.size() - 1)]});
        ++d.generated_tokens;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      d.finish_reason = *cancelled ? "cancelled" : "length";
      on_done(d);
      --running_;
    });
    return id;
  }
  void cancel(std::uint64_t id) override {
    std::lock_guard lock(mutex_);
    if (auto it = cancels_.find(id); it != cancels_.end()) *it->second = true;
  }
  std::size_t running() const override { return std::size_t(running_.load()); }

 private:
  std::mutex mutex_;
  std::uint64_t next_ = 1;
  std::map<std::uint64_t, std::shared_ptr<std::atomic<bool>>> cancels_;
  std::vector<std::thread> threads_;
  std::atomic<int> running_{0};
};

}  // namespace

BOOST_AUTO_TEST_CASE(many_clients_stream_while_generations_call_back_from_their_threads) {
  const Tokenizer tokenizer(test::source_dir() / "models/demo-llm/tokenizer.model", 1, 2);
  ThreadedGenerations generations;
  actors::SchedulerGauges gauges;
  server::HttpServer http("127.0.0.1", 0);
  server::GatewayOptions options;
  options.model_name = "echo";
  server::Gateway gateway(generations, tokenizer, gauges, options, http.poster());
  std::thread network([&] { http.serve(gateway, std::chrono::seconds(5), [] {}); });
  const int port = http.port();

  const std::string prompt = "the little dog ran to the park and played with a red ball all day long";
  const auto ids = tokenizer.encode(prompt);
  std::vector<std::int32_t> echoed;
  for (std::size_t i = 0; i < 40; ++i) echoed.push_back(ids[1 + i % (ids.size() - 1)]);
  const std::string expected = generated_text(tokenizer, echoed);
  std::atomic<int> good{0}, cancelled{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      testkit::WebSocket ws("127.0.0.1", port);
      for (int r = 0; r < 3; ++r) {
        const bool cancel = c == 0 && r == 1;
        ws.send(json{{"request_id", "r"}, {"prompt", prompt}, {"max_new_tokens", cancel ? 1000 : 40}}.dump());
        std::string text;
        bool sent_cancel = false;
        for (;;) {
          const json f = json::parse(ws.receive(std::chrono::seconds(60)));
          if (f["type"] == "token") {
            text += f["text"].get<std::string>();
            if (cancel && !sent_cancel) ws.send(R"({"type": "cancel", "request_id": "r"})"), sent_cancel = true;
            continue;
          }
          if (f["type"] == "done" && f["finish_reason"] == "cancelled") ++cancelled;
          else if (f["type"] == "done" && text == expected) ++good;
          break;
        }
      }
    });
  for (auto& t : clients) t.join();
  BOOST_TEST(good == 23);
  BOOST_TEST(cancelled == 1);
  const auto metrics = testkit::http_request("127.0.0.1", port, "GET", "/metrics");
  BOOST_TEST(metrics.body.find("banyan_requests_total{finish_reason=\"length\"} 23") != std::string::npos);

  http.stop();  // from this thread, as a signal would
  network.join();
  BOOST_TEST(generations.running() == 0u);
}
