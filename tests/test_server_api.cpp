// The gateway's pieces that need no socket: request parsing and its errors, the streamed text
// with stop strings, and the Prometheus rendering.
#define BOOST_TEST_MODULE test_server_api
#include <boost/test/unit_test.hpp>

#include "server/api.hpp"
#include "server/metrics.hpp"
#include "server/text_stream.hpp"
#include "support/test_support.hpp"

using namespace banyan;
using namespace banyan::server;
using nlohmann::json;

namespace {

std::string error_code(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e.code;
  }
  return "no error";
}

Tokenizer demo_tokenizer() { return Tokenizer(test::source_dir() / "models/demo-llm/tokenizer.model", 1, 2); }

}  // namespace

BOOST_AUTO_TEST_CASE(a_stream_request_reads_every_field) {
  const TextRequest r = parse_stream_request(
      json::parse(R"({"request_id": 7, "prompt": "hi", "max_new_tokens": 9, "temperature": 0.5, "top_p": 0.9,
                      "top_k": 40, "seed": 3, "stop": "\n\n", "mode": "incremental"})"),
      {100, 50});
  BOOST_TEST(r.request_id == "7");
  BOOST_TEST(r.prompt == "hi");
  BOOST_TEST(r.max_new_tokens == 9);
  BOOST_TEST(r.temperature == 0.5f);
  BOOST_TEST(r.top_p == 0.9f);
  BOOST_TEST(r.top_k == 40);
  BOOST_TEST(r.seed == 3u);
  BOOST_TEST((r.stop == std::vector<std::string>{"\n\n"}));
  BOOST_TEST(!r.speculate);
}

BOOST_AUTO_TEST_CASE(bad_requests_name_what_is_wrong) {
  const ApiLimits limits{100, 50};
  auto stream = [&](const std::string& text) { return error_code([&] { parse_stream_request(json::parse(text), limits); }); };
  BOOST_TEST(stream(R"({"prompt": "x", "max_new_tokens": 101})") == "out_of_range");
  BOOST_TEST(stream(R"({"prompt": "x", "max_new_tokens": 0})") == "out_of_range");
  BOOST_TEST(stream(R"({"prompt": "x", "max_new_tokens": 1.5})") == "invalid_field");
  BOOST_TEST(stream(R"({"prompt": "x", "top_p": 0})") == "out_of_range");
  BOOST_TEST(stream(R"({"prompt": "x", "stop": ["a", 3]})") == "invalid_field");
  BOOST_TEST(stream(R"({"prompt": "x", "stop": ["", "b"]})") == "out_of_range");
  BOOST_TEST(stream(R"({"prompt": "x", "seed": -1})") == "out_of_range");
  BOOST_TEST(stream(R"({"prompt": "x", "type": "explode"})") == "invalid_field");
  BOOST_TEST(stream(R"({"max_new_tokens": 3})") == "empty_prompt");
  BOOST_TEST(stream(R"([1, 2])") == "invalid_request");
  BOOST_TEST(stream(R"({"prompt": "x", "promt": "y"})") == "unknown_field");
  BOOST_TEST(error_code([] { parse_json("{\"prompt\": "); }) == "invalid_json");

  auto completion = [&](const std::string& text) {
    return error_code([&] { parse_completion_request(json::parse(text), limits, "demo"); });
  };
  BOOST_TEST(completion(R"({"prompt": "x", "model": "other"})") == "model_not_found");
  BOOST_TEST(completion(R"({"prompt": "x", "n": 2})") == "out_of_range");
  BOOST_TEST(completion(R"({"prompt": "x", "stream": "yes"})") == "invalid_field");
  BOOST_TEST(completion(R"({"prompt": "x", "max_new_tokens": 3})") == "unknown_field");
  const TextRequest c = parse_completion_request(json::parse(R"({"prompt": "x", "model": "demo", "stream": true})"), limits, "demo");
  BOOST_TEST(c.stream);
  BOOST_TEST(c.max_new_tokens == 16);  // OpenAI's defaults
  BOOST_TEST(c.temperature == 1.0f);

  const json body = error_body(ApiError(401, "invalid_api_key", "no"));
  BOOST_TEST(body["error"]["type"] == "authentication_error");
  BOOST_TEST(body["error"]["code"] == "invalid_api_key");
  BOOST_TEST(body["error"]["message"] == "no");
}

BOOST_AUTO_TEST_CASE(streamed_text_without_stops_is_the_decoded_text) {
  const Tokenizer tok = demo_tokenizer();
  const auto ids = tok.encode("Once upon a time, there was a girl.\nShe said: \"hello\" and smiled.", false);
  TextStream s(tok, {});
  std::string text;
  for (auto t : ids) text += s.push(t);
  text += s.finish();
  BOOST_TEST(text == generated_text(tok, ids));
  BOOST_TEST(s.tokens() == int(ids.size()));
}

BOOST_AUTO_TEST_CASE(stop_strings_cut_the_text_even_across_tokens) {
  const Tokenizer tok = demo_tokenizer();
  const auto ids = tok.encode("one two.\n\nthree four", false);
  for (const std::string stop : {"\n\n", "two", "e t", "four"}) {
    BOOST_TEST_CONTEXT("stop " << json(stop)) {
      TextStream s(tok, {stop, "never there"});
      std::string text;
      std::size_t pushed = 0;
      for (auto t : ids) {
        ++pushed;
        text += s.push(t);
        if (s.stopped()) break;
      }
      text += s.finish();
      const std::string full = generated_text(tok, ids);
      BOOST_TEST(s.stopped());
      BOOST_TEST(text == full.substr(0, full.find(stop)));
      BOOST_TEST(s.tokens() == int(pushed));
      BOOST_TEST(s.push(ids[0]).empty());  // after a stop nothing more comes out
    }
  }
}

BOOST_AUTO_TEST_CASE(held_back_text_comes_out_when_the_stop_string_does_not_follow) {
  const Tokenizer tok = demo_tokenizer();
  const auto ids = tok.encode("a.\nb", false);
  TextStream s(tok, {"\n\n"});
  std::string text;
  for (auto t : ids) text += s.push(t);
  BOOST_TEST(!s.stopped());
  BOOST_TEST(text + s.finish() == generated_text(tok, ids));
}

BOOST_AUTO_TEST_CASE(metrics_render_cumulative_histograms_and_gauges) {
  ServerMetrics m;
  m.requests["length"] = 2;
  m.time_to_first_token_s.observe(0.003);
  m.time_to_first_token_s.observe(0.2);
  m.time_to_first_token_s.observe(100);
  actors::SchedulerGauges g;
  g.queued = 3;
  g.active = 1;
  g.slots = 8;
  const std::string text = m.render(g, 4);
  auto has = [&](const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; };
  BOOST_TEST(has("banyan_requests_total{finish_reason=\"length\"} 2"));
  BOOST_TEST(has("banyan_requests_total{finish_reason=\"cancelled\"} 0"));
  BOOST_TEST(has("banyan_time_to_first_token_seconds_bucket{le=\"0.005\"} 1"));
  BOOST_TEST(has("banyan_time_to_first_token_seconds_bucket{le=\"0.25\"} 2"));
  BOOST_TEST(has("banyan_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3"));
  BOOST_TEST(has("banyan_time_to_first_token_seconds_count 3"));
  BOOST_TEST(has("banyan_queue_length 3"));
  BOOST_TEST(has("banyan_kv_cache_slots_used 1"));
  BOOST_TEST(has("banyan_running_requests 4"));
  BOOST_TEST(has("# TYPE banyan_time_to_first_token_seconds histogram"));
}
