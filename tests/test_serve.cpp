// `banyan serve` as a user meets it: a real server process on a free loopback port, spoken to
// over websocket and HTTP. Streams equal `banyan generate`'s text, bad input gets errors while
// good streams go on, cancels free their requests, keys are checked, SIGTERM stops it cleanly.
#define BOOST_TEST_MODULE test_serve
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <set>
#include <thread>

#include "testkit/http_client.hpp"
#include "testkit/server_process.hpp"
#include "testkit/token_stream.hpp"
#include "support/test_support.hpp"

using namespace banyan;
using nlohmann::json;
using testkit::ServerProcess;
using testkit::WebSocket;

namespace {

const std::string kHost = "127.0.0.1";
const std::string kPrompt = "Once upon a time";

using testkit::read_stream;
using testkit::Streamed;

json metrics_value(int port, const std::string& series) {
  std::istringstream lines(testkit::http_request(kHost, port, "GET", "/metrics").body);
  for (std::string line; std::getline(lines, line);)
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  return nullptr;
}

struct Server {
  ServerProcess process{test::banyan_binary(), {}};
  int port() const { return process.port(); }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(one_server, Server)

BOOST_AUTO_TEST_CASE(websocket_stream_equals_banyan_generate) {
  for (const std::string mode : {"speculative", "incremental"}) {
    BOOST_TEST_CONTEXT("mode " << mode) {
      const std::string expected = test::generated_text(kPrompt, 40, mode);
      WebSocket ws(kHost, port());
      ws.send(json{{"request_id", "a"}, {"prompt", kPrompt}, {"max_new_tokens", 40}, {"temperature", 0}, {"mode", mode}}.dump());
      const Streamed s = read_stream(ws, "a");
      BOOST_TEST(s.text == expected);
      BOOST_TEST(s.token_frames == 40);
      BOOST_TEST(s.done["type"] == "done");
      BOOST_TEST(s.done["finish_reason"] == "length");
      BOOST_TEST(s.done["usage"]["completion_tokens"] == 40);
      const double accepted = s.done["stats"]["accepted_per_step"];
      if (mode == "incremental") BOOST_TEST(accepted == 1.0);
      else BOOST_TEST(accepted > 1.0);  // the demo SSM guesses some tokens right
    }
  }
}

BOOST_AUTO_TEST_CASE(server_sent_events_equal_banyan_generate) {
  const std::string expected = test::generated_text(kPrompt, 30, "speculative");
  const auto r = testkit::http_request(
      kHost, port(), "POST", "/v1/completions",
      json{{"model", "demo-llm"}, {"prompt", kPrompt}, {"max_tokens", 30}, {"temperature", 0}, {"stream", true}}.dump());
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.content_type == "text/event-stream");
  const auto events = testkit::sse_events(r.body);
  BOOST_TEST_REQUIRE(events.size() >= 2u);
  BOOST_TEST(events.back() == "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) text += json::parse(events[i])["choices"][0]["text"].get<std::string>();
  BOOST_TEST(text == expected);
  const json last = json::parse(events[events.size() - 2]);
  BOOST_TEST(last["choices"][0]["finish_reason"] == "length");
  BOOST_TEST(last["usage"]["completion_tokens"] == 30);

  // The same without streaming: one JSON body in OpenAI's shape.
  const auto whole = testkit::http_request(kHost, port(), "POST", "/v1/completions",
                                          json{{"prompt", kPrompt}, {"max_tokens", 30}, {"temperature", 0}}.dump());
  BOOST_TEST(whole.status == 200);
  const json body = json::parse(whole.body);
  BOOST_TEST(body["object"] == "text_completion");
  BOOST_TEST(body["choices"][0]["text"] == expected);
}

BOOST_AUTO_TEST_CASE(stop_strings_end_the_text_before_them) {
  const std::string full = test::generated_text(kPrompt, 40, "speculative");
  const std::string stop = full.substr(20, 3);
  const std::string expected = full.substr(0, full.find(stop));
  WebSocket ws(kHost, port());
  ws.send(json{{"request_id", "s"}, {"prompt", kPrompt}, {"max_new_tokens", 40}, {"stop", {stop}}}.dump());
  const Streamed s = read_stream(ws, "s");
  BOOST_TEST(s.text == expected);
  BOOST_TEST(s.done["finish_reason"] == "stop");
  BOOST_TEST(s.done["usage"]["completion_tokens"] < 40);
}

BOOST_AUTO_TEST_CASE(cancel_mid_stream_frees_the_request) {
  const json before = metrics_value(port(), "banyan_requests_total{finish_reason=\"cancelled\"}");
  WebSocket ws(kHost, port());
  ws.send(json{{"request_id", "long"}, {"prompt", kPrompt}, {"max_new_tokens", 1000}}.dump());
  for (int i = 0; i < 3; ++i) BOOST_TEST(json::parse(ws.receive())["type"] == "token");
  ws.send(R"({"type": "cancel", "request_id": "long"})");
  const Streamed s = read_stream(ws, "long");
  BOOST_TEST(s.done["finish_reason"] == "cancelled");
  BOOST_TEST(s.done["usage"]["completion_tokens"] < 1000);
  BOOST_TEST(metrics_value(port(), "banyan_requests_total{finish_reason=\"cancelled\"}") == before.get<double>() + 1);
  BOOST_TEST(metrics_value(port(), "banyan_running_requests") == 0.0);
  // The scheduler publishes its gauges after the cancel: the slot is free.
  for (int i = 0; i < 100 && metrics_value(port(), "banyan_kv_cache_slots_used") != 0.0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  BOOST_TEST(metrics_value(port(), "banyan_kv_cache_slots_used") == 0.0);
}

BOOST_AUTO_TEST_CASE(bad_input_gets_errors_while_a_good_stream_completes) {
  const std::string expected = test::generated_text(kPrompt, 400, "speculative");
  WebSocket good(kHost, port());
  good.send(json{{"request_id", "good"}, {"prompt", kPrompt}, {"max_new_tokens", 400}}.dump());
  good.send("{");  // a bad frame on the good stream's own connection

  const std::vector<std::pair<std::string, std::string>> bad_frames = {
      {"this is not json", "invalid_json"},
      {R"({"prompt": 5})", "invalid_field"},
      {R"({"prompt": ""})", "empty_prompt"},
      {R"({"prompt": "hi", "max_new_tokens": 100000})", "out_of_range"},
      {R"({"prompt": "hi", "temperature": -1})", "out_of_range"},
      {R"({"prompt": "hi", "colour": "blue"})", "unknown_field"},
      {R"({"prompt": "hi", "mode": "fast"})", "out_of_range"},
      {R"({"type": "cancel", "request_id": "nobody"})", "unknown_request"},
      {json{{"prompt", std::string(20000, 'a') + " once upon a time"}}.dump(), "prompt_too_long"},
  };
  WebSocket bad(kHost, port());
  for (const auto& [frame, code] : bad_frames) {
    BOOST_TEST_CONTEXT(frame.substr(0, 60)) {
      bad.send(frame);
      const json reply = json::parse(bad.receive());
      BOOST_TEST(reply["type"] == "error");
      BOOST_TEST(reply["code"] == code);
      BOOST_TEST(!reply["message"].get<std::string>().empty());
    }
  }
  // Bad HTTP on the same port.
  const auto body = testkit::http_request(kHost, port(), "POST", "/v1/completions", "{\"prompt\": [1, 2");
  BOOST_TEST(body.status == 400);
  BOOST_TEST(json::parse(body.body)["error"]["code"] == "invalid_json");
  BOOST_TEST(json::parse(body.body)["error"]["type"] == "invalid_request_error");
  BOOST_TEST(testkit::http_request(kHost, port(), "POST", "/v1/completions", R"({"prompt": "x", "model": "gpt-4"})").status == 404);
  BOOST_TEST(testkit::http_request(kHost, port(), "GET", "/v1/completions").status == 405);
  BOOST_TEST(testkit::http_request(kHost, port(), "GET", "/no/such/thing").status == 404);
  const std::string garbage = testkit::raw_exchange(kHost, port(), std::string("\x16\x03\x01\x02\x00garbage\r\n\r\n", 17));
  BOOST_TEST(garbage.rfind("HTTP/1.1 400", 0) == 0u, garbage);

  std::vector<json> others;
  const Streamed s = read_stream(good, "good", &others);
  BOOST_TEST(s.text == expected);
  BOOST_TEST(s.done["finish_reason"] == "length");
  BOOST_TEST_REQUIRE(others.size() == 1u);  // the error for "{" on this connection
  BOOST_TEST(others[0]["code"] == "invalid_json");

  // Both connections still serve.
  bad.send(json{{"request_id", "after"}, {"prompt", kPrompt}, {"max_new_tokens", 5}}.dump());
  BOOST_TEST(read_stream(bad, "after").done["finish_reason"] == "length");
  BOOST_TEST(testkit::http_request(kHost, port(), "GET", "/health").status == 200);
}

BOOST_AUTO_TEST_CASE(requests_share_one_connection) {
  WebSocket ws(kHost, port());
  for (const std::string id : {"1", "2", "3"})
    ws.send(json{{"request_id", id}, {"prompt", kPrompt + " " + id}, {"max_new_tokens", 12 + 4 * std::stoi(id)}}.dump());
  std::map<std::string, std::string> text;
  std::set<std::string> done;
  while (done.size() < 3) {
    const json f = json::parse(ws.receive());
    const std::string id = f["request_id"];
    if (f["type"] == "token") text[id] += f["text"].get<std::string>();
    else BOOST_TEST((f["type"] == "done" && done.insert(id).second));
  }
  for (const std::string id : {"1", "2", "3"})
    BOOST_TEST(text[id] == test::generated_text(kPrompt + " " + id, 12 + 4 * std::stoi(id), "speculative"));
}

BOOST_AUTO_TEST_CASE(models_health_metrics_and_the_web_page) {
  const json models = json::parse(testkit::http_request(kHost, port(), "GET", "/v1/models").body);
  BOOST_TEST(models["data"][0]["id"] == "demo-llm");
  BOOST_TEST(json::parse(testkit::http_request(kHost, port(), "GET", "/health").body)["status"] == "ok");
  const auto metrics = testkit::http_request(kHost, port(), "GET", "/metrics");
  for (const char* series : {"banyan_requests_total", "banyan_time_to_first_token_seconds_bucket",
                             "banyan_inter_token_latency_seconds_bucket", "banyan_queue_length",
                             "banyan_kv_cache_slots_used", "banyan_accepted_tokens_per_step_bucket"})
    BOOST_TEST(metrics.body.find(series) != std::string::npos, series);
  const auto page = testkit::http_request(kHost, port(), "GET", "/");
  BOOST_TEST(page.status == 200);
  BOOST_TEST(page.content_type.rfind("text/html", 0) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(api_keys_are_required_when_configured) {
  ServerProcess server(test::banyan_binary(), {"--api-key", "sesame"});
  const auto body = json{{"prompt", kPrompt}, {"max_tokens", 3}}.dump();
  const auto no_key = testkit::http_request(kHost, server.port(), "POST", "/v1/completions", body);
  BOOST_TEST(no_key.status == 401);
  BOOST_TEST(json::parse(no_key.body)["error"]["type"] == "authentication_error");
  BOOST_TEST(testkit::http_request(kHost, server.port(), "POST", "/v1/completions", body, "wrong").status == 401);
  BOOST_TEST(testkit::http_request(kHost, server.port(), "POST", "/v1/completions", body, "sesame").status == 200);
  BOOST_CHECK_THROW(WebSocket(kHost, server.port()), std::runtime_error);
  WebSocket ws(kHost, server.port(), "/v1/stream", "sesame");
  ws.send(json{{"request_id", "k"}, {"prompt", kPrompt}, {"max_new_tokens", 3}}.dump());
  BOOST_TEST(read_stream(ws, "k").done["finish_reason"] == "length");
  BOOST_TEST(metrics_value(server.port(), "banyan_running_requests").is_null());  // /metrics needs the key too
}

BOOST_AUTO_TEST_CASE(sigterm_lets_running_requests_finish_then_exits_0) {
  ServerProcess server(test::banyan_binary(), {"--shutdown-grace", "30"});
  const std::string expected = test::generated_text(kPrompt, 80, "speculative");
  WebSocket ws(kHost, server.port());
  ws.send(json{{"request_id", "t"}, {"prompt", kPrompt}, {"max_new_tokens", 80}}.dump());
  std::string text = json::parse(ws.receive())["text"];
  ::kill(server.pid(), SIGTERM);
  const Streamed rest = read_stream(ws, "t");
  BOOST_TEST(text + rest.text == expected);
  BOOST_TEST(rest.done["finish_reason"] == "length");
  const int code = server.stop(0, std::chrono::seconds(30));
  BOOST_TEST(code == 0, "exit code " << code << ", stderr:\n" << server.error_output());
  BOOST_TEST(server.error_output().find("SIGTERM received") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(sigterm_cancels_what_outlives_the_grace_period) {
  ServerProcess server(test::banyan_binary(), {"--shutdown-grace", "0"});
  WebSocket ws(kHost, server.port());
  ws.send(json{{"request_id", "slow"}, {"prompt", kPrompt}, {"max_new_tokens", 500}}.dump());
  json f = json::parse(ws.receive());
  ::kill(server.pid(), SIGTERM);
  const Streamed rest = read_stream(ws, "slow");
  BOOST_TEST(rest.done["finish_reason"] == "cancelled");
  const int code = server.stop(0, std::chrono::seconds(30));
  BOOST_TEST(code == 0, "exit code " << code << ", stderr:\n" << server.error_output());
}

BOOST_AUTO_TEST_CASE(the_llm_as_pipeline_stages_streams_the_same_text) {
  ServerProcess server(test::banyan_binary(), {"--pipeline-stages", "3"});
  BOOST_TEST(server.error_output().find("LLM stage (layers 4-5)") != std::string::npos, server.error_output());
  for (const std::string mode : {"speculative", "incremental"}) {
    const std::string expected = test::generated_text(kPrompt, 40, mode);
    WebSocket ws(kHost, server.port());
    ws.send(json{{"request_id", "p"}, {"prompt", kPrompt}, {"max_new_tokens", 40}, {"mode", mode}}.dump());
    BOOST_TEST(read_stream(ws, "p").text == expected, "mode " << mode);
  }
  const int code = server.stop(SIGTERM, std::chrono::seconds(30));
  BOOST_TEST(code == 0, "exit code " << code << ", stderr:\n" << server.error_output());
}

BOOST_AUTO_TEST_CASE(a_paged_kv_cache_too_small_for_every_stream_streams_the_same_texts) {
  // Sequences of up to 128 tokens (133 rows with the demo SSM's tree: 9 blocks of 16) in a cache
  // of 10 blocks; six streams of about 45 rows (3 blocks) each at once: they take turns, some
  // giving their blocks back mid-stream, and every text is what banyan generate gives alone.
  ServerProcess server(test::banyan_binary(), {"--max-sequence-length", "128", "--kv-cache-tokens", "160"});
  BOOST_TEST(server.error_output().find("KV cache: paged: 160 tokens in 10 blocks of 16") != std::string::npos,
             server.error_output());
  for (const std::string mode : {"speculative", "incremental"}) {
    BOOST_TEST_CONTEXT("mode " << mode) {
      const std::string expected = test::generated_text(kPrompt, 40, mode);
      WebSocket ws(kHost, server.port());
      for (int i = 0; i < 6; ++i)
        ws.send(json{{"request_id", std::to_string(i)}, {"prompt", kPrompt}, {"max_new_tokens", 40}, {"mode", mode}}.dump());
      std::map<std::string, std::string> texts;
      for (int done = 0; done < 6;) {
        const json m = json::parse(ws.receive());
        if (m["type"] == "token") texts[m["request_id"].get<std::string>()] += m["text"].get<std::string>();
        if (m["type"] == "done") ++done;
        BOOST_TEST_REQUIRE(m["type"] != "error", m.dump());
      }
      for (const auto& [id, text] : texts) BOOST_TEST(text == expected, "request " << id);
      BOOST_TEST(texts.size() == 6u);
    }
  }
  BOOST_TEST(metrics_value(server.port(), "banyan_kv_cache_blocks") == 10.0);
  BOOST_TEST(metrics_value(server.port(), "banyan_kv_cache_blocks_used") == 0.0);  // every stream gave its blocks back
  BOOST_TEST(metrics_value(server.port(), "banyan_preemptions_total").get<double>() > 0.0);
  // A prompt of 48 tokens, twice: the second finds its first two blocks (32 tokens; the last
  // must be computed) in the prefix cache, and streams the same text.
  const std::string long_prompt = "A long time ago in a small town by the sea, there lived an old fisherman and his wife. "
                                  "Every morning he went out in his boat, and every evening his wife waited for him on the beach.";
  const double cached_before = metrics_value(server.port(), "banyan_prefix_cache_tokens_total").get<double>();
  for (int i = 0; i < 2; ++i) {
    WebSocket ws(kHost, server.port());
    ws.send(json{{"request_id", "l"}, {"prompt", long_prompt}, {"max_new_tokens", 20}, {"mode", "incremental"}}.dump());
    const Streamed s = read_stream(ws, "l");
    BOOST_TEST(s.text == test::generated_text(long_prompt, 20, "incremental"), "time " << i);
    BOOST_TEST(s.done["usage"]["prompt_tokens_details"]["cached_tokens"] == (i == 0 ? 0 : 32), s.done.dump());
  }
  BOOST_TEST(metrics_value(server.port(), "banyan_prefix_cache_tokens_total").get<double>() >= cached_before + 32);
  BOOST_TEST(metrics_value(server.port(), "banyan_kv_cache_blocks_cached").get<double>() >= 2);
  const int code = server.stop(SIGTERM, std::chrono::seconds(30));
  BOOST_TEST(code == 0, "exit code " << code << ", stderr:\n" << server.error_output());
}

BOOST_AUTO_TEST_CASE(an_offloaded_llm_streams_the_same_text_and_reports_its_paging) {
  // The demo LLM converted and served under a 12 MiB budget (half its weights), whole and as two
  // pipeline stages: the text is the resident one's, and /metrics shows the node's memory, the
  // tiers and the bytes streamed. The two stages share the node's one budget (its memory
  // actor's): split in halves, 6 MiB could not hold the tied classifier and a layer at once.
  test::TempDir dir;
  const auto file = dir / "demo.banyan";
  const auto convert = test::run_command(test::shell_quote(test::banyan_binary().string()) + " convert --model " +
                                         test::shell_quote((test::source_dir() / "models/demo-llm").string()) +
                                         " --dtype f32 --out " + test::shell_quote(file.string()));
  BOOST_TEST_REQUIRE(convert.exit_code == 0, convert.err);
  for (const std::string stages : {"1", "2"}) {
    BOOST_TEST_CONTEXT("pipeline stages " << stages) {
      ServerProcess server(test::banyan_binary(), {"--model", file.string(), "--ssm",
                                                   (test::source_dir() / "models/demo-ssm").string(), "--memory-budget",
                                                   "12", "--pipeline-stages", stages});
      BOOST_TEST(server.error_output().find("LLM offloaded:") != std::string::npos, server.error_output());
      for (const std::string mode : {"speculative", "incremental"}) {
        WebSocket ws(kHost, server.port());
        ws.send(json{{"request_id", "o"}, {"prompt", kPrompt}, {"max_new_tokens", 40}, {"mode", mode}}.dump());
        BOOST_TEST(read_stream(ws, "o").text == test::generated_text(kPrompt, 40, mode), "mode " << mode);
      }
      const auto metric = [&](const std::string& series) { return metrics_value(server.port(), series); };
      const json disk = metric("banyan_weight_bytes{node=\"serve\",tier=\"disk\"}");
      const json resident = metric("banyan_weight_bytes{node=\"serve\",tier=\"resident\"}");
      const json streaming = metric("banyan_weight_bytes{node=\"serve\",tier=\"streaming\"}");
      BOOST_TEST_REQUIRE((disk.is_number() && resident.is_number() && streaming.is_number()));
      BOOST_TEST(disk.get<double>() > 24e6);  // the whole LLM, f32
      BOOST_TEST(resident.get<double>() + streaming.get<double>() <= 12.0 * (1 << 20));
      BOOST_TEST(metric("banyan_memory_budget_bytes{node=\"serve\"}") == 12.0 * (1 << 20));
      BOOST_TEST(metric("banyan_weight_bytes{node=\"serve\",tier=\"host\"}") == 0);  // a CPU node has no pinned tier
      // The node's weights: the LLM's (all of them, on every tier) and the SSM's.
      BOOST_TEST(metric("banyan_node_weight_bytes{node=\"serve\"}").get<double>() > disk.get<double>());
      BOOST_TEST(metric("banyan_weights_streamed_bytes_total{node=\"serve\"}").get<double>() > 40 * 1e6);
      BOOST_TEST(metric("banyan_weight_stall_seconds_total{node=\"serve\"}").is_number());
      const int code = server.stop(SIGTERM, std::chrono::seconds(30));
      BOOST_TEST(code == 0, "exit code " << code << ", stderr:\n" << server.error_output());
    }
  }
}

BOOST_AUTO_TEST_CASE(offloaded_tensor_shards_stream_from_their_own_files) {
  // `banyan convert --tensor-shards 2` writes each shard's weights to a file of its own. Served as
  // two shards under a 16 MiB budget (8 MiB each, of 15 MiB apiece), the text is the whole
  // model's. Offloading shards of the whole file is refused at start, naming the command.
  test::TempDir dir;
  const std::string banyan = test::shell_quote(test::banyan_binary().string());
  const std::string demo = test::shell_quote((test::source_dir() / "models/demo-llm").string());
  const auto file = dir / "demo.banyan";
  const auto convert = test::run_command(banyan + " convert --model " + demo + " --dtype f32 --tensor-shards 2 --out " +
                                         test::shell_quote(file.string()));
  BOOST_TEST_REQUIRE(convert.exit_code == 0, convert.err);
  BOOST_TEST(std::filesystem::exists(dir / "demo.shard1of2.banyan"));
  BOOST_TEST(std::filesystem::exists(dir / "demo.shard2of2.banyan"));
  BOOST_TEST(!std::filesystem::exists(file));  // only the shards' files
  {
    ServerProcess server(test::banyan_binary(), {"--model", file.string(), "--ssm", (test::source_dir() / "models/demo-ssm").string(),
                                                 "--tensor-shards", "2", "--memory-budget", "16"});
    BOOST_TEST(server.error_output().find("(budget 16 MiB, shared by 2 shards)") != std::string::npos, server.error_output());
    for (const std::string mode : {"speculative", "incremental"}) {
      WebSocket ws(kHost, server.port());
      ws.send(json{{"request_id", "t"}, {"prompt", kPrompt}, {"max_new_tokens", 40}, {"mode", mode}}.dump());
      BOOST_TEST(read_stream(ws, "t").text == test::generated_text(kPrompt, 40, mode), "mode " << mode);
    }
    const json resident = metrics_value(server.port(), "banyan_weight_bytes{node=\"serve\",tier=\"resident\"}");
    const json streaming = metrics_value(server.port(), "banyan_weight_bytes{node=\"serve\",tier=\"streaming\"}");
    BOOST_TEST_REQUIRE((resident.is_number() && streaming.is_number()));
    BOOST_TEST(resident.get<double>() + streaming.get<double>() <= 16.0 * (1 << 20));
    BOOST_TEST(metrics_value(server.port(), "banyan_weights_streamed_bytes_total{node=\"serve\"}").get<double>() > 40 * 1e6);
    const int code = server.stop(SIGTERM, std::chrono::seconds(30));
    BOOST_TEST(code == 0, "exit code " << code << ", stderr:\n" << server.error_output());
  }
  const auto refused = test::run_command(banyan + " serve --model " + demo + " --tensor-shards 2 --memory-budget 16 --port 0");
  BOOST_TEST(refused.exit_code == 1);
  BOOST_TEST(refused.err.find("needs each shard's weights in a file of its own: write them with `banyan convert --model") !=
                 std::string::npos, refused.err);
}

BOOST_AUTO_TEST_CASE(a_stage_in_another_process_streams_the_same_text_and_rejoins_after_its_death) {
  // The demo LLM's layers 3-5 in a `banyan stage` process; the server keeps layers 0-2 and passes
  // its activations there as messages. Killing the stage process fails the request running on
  // it with an error frame at once; /health says degraded and new requests get a 503 naming the
  // stage; a stage started again on the same port rejoins, and the server serves as before.
  const std::vector<std::string> stage_command = {test::banyan_binary().string(), "stage", "--model",
                                                  (test::source_dir() / "models/demo-llm").string(), "--layers", "3-5"};
  auto stage_on = [&](int port) {
    auto argv = stage_command;
    argv.insert(argv.end(), {"--port", std::to_string(port)});
    auto process = std::make_unique<testkit::ChildProcess>(argv);
    const auto ready = process->wait_for_output(std::regex("on 127\\.0\\.0\\.1:(\\d+)"), std::chrono::seconds(60));
    return std::make_pair(std::move(process), std::stoi(ready[1]));
  };
  auto [stage, stage_port] = stage_on(0);
  ServerProcess server(test::banyan_binary(), {"--remote-stage", "127.0.0.1:" + std::to_string(stage_port)});
  BOOST_TEST(server.error_output().find("LLM stage (layers 0-2)") != std::string::npos, server.error_output());
  auto stream = [&](const std::string& mode, int tokens) {
    return testkit::stream_generation(kHost, server.port(), kPrompt, tokens, mode);
  };
  for (const std::string mode : {"speculative", "incremental"})
    BOOST_TEST(stream(mode, 40).text == test::generated_text(kPrompt, 40, mode), "mode " << mode);

  WebSocket ws(kHost, server.port());
  ws.send(json{{"request_id", "long"}, {"prompt", kPrompt}, {"max_new_tokens", 400}, {"mode", "incremental"}}.dump());
  const json first = json::parse(ws.receive());  // it runs
  BOOST_TEST(first["type"] == "token");
  stage->stop(SIGKILL, std::chrono::seconds(10));
  const auto killed = std::chrono::steady_clock::now();
  const Streamed cut = read_stream(ws, "long");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  BOOST_TEST(seconds < 5.0);
  BOOST_TEST(cut.done["type"] == "error", cut.done.dump());
  BOOST_TEST(cut.done.dump().find("the stage after layers 0-2") != std::string::npos, cut.done.dump());
  const auto next = testkit::http_request(kHost, server.port(), "POST", "/v1/completions",
                                          json{{"prompt", kPrompt}, {"max_tokens", 5}}.dump());
  BOOST_TEST(next.status == 503);
  BOOST_TEST(next.body.find("127.0.0.1:" + std::to_string(stage_port)) != std::string::npos, next.body);
  const json health = json::parse(testkit::http_request(kHost, server.port(), "GET", "/health").body);
  BOOST_TEST(health["status"] == "degraded", health.dump());

  auto [again, again_port] = stage_on(stage_port);
  BOOST_TEST(again_port == stage_port);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (json::parse(testkit::http_request(kHost, server.port(), "GET", "/health").body)["status"] != "ok" &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  BOOST_TEST(stream("speculative", 40).text == test::generated_text(kPrompt, 40, "speculative"));
  const int code = server.stop(SIGTERM, std::chrono::seconds(30));
  BOOST_TEST(code == 0, "exit code " << code << ", stderr:\n" << server.error_output());
}

BOOST_AUTO_TEST_CASE(a_stage_in_another_process_takes_its_activations_over_the_data_plane) {
  testkit::ChildProcess stage({test::banyan_binary().string(), "stage", "--model",
                               (test::source_dir() / "models/demo-llm").string(), "--layers", "3-5", "--data-port", "0"});
  const auto ready = stage.wait_for_output(std::regex("on 127\\.0\\.0\\.1:(\\d+) \\(data plane"), std::chrono::seconds(60));
  ServerProcess server(test::banyan_binary(), {"--remote-stage", "127.0.0.1:" + std::string(ready[1]), "--data-port", "0"});
  for (const std::string mode : {"speculative", "incremental"})
    BOOST_TEST(testkit::stream_generation(kHost, server.port(), kPrompt, 40, mode).text ==
                   test::generated_text(kPrompt, 40, mode),
               "mode " << mode);
  const std::string metrics = testkit::http_request(kHost, server.port(), "GET", "/metrics").body;
  std::smatch sent;
  BOOST_TEST_REQUIRE(std::regex_search(metrics, sent, std::regex("banyan_data_plane_bytes_total\\{direction=\"sent\"\\} (\\S+)")));
  BOOST_TEST(std::stod(sent[1]) > 100000.0, sent[1]);
}

BOOST_AUTO_TEST_CASE(a_bad_config_fails_before_binding_naming_file_line_and_key) {
  test::TempDir dir;
  std::ofstream(dir / "serve.yaml") << "model:\n  path: " << (test::source_dir() / "models/demo-llm").string()
                                    << "\nlimits:\n  max_requests_per_batch: many\n";
  const auto r = test::run_command(test::shell_quote(test::banyan_binary().string()) + " serve --config " +
                                   test::shell_quote((dir / "serve.yaml").string()));
  BOOST_TEST(r.exit_code != 0);
  BOOST_TEST(r.err.find("serve.yaml:4:") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("limits.max_requests_per_batch") != std::string::npos, r.err);
  BOOST_TEST(r.out.find("listening") == std::string::npos);
  const auto missing = test::run_command(test::shell_quote(test::banyan_binary().string()) +
                                         " serve --port 0 --model /nonexistent/model");
  BOOST_TEST(missing.exit_code != 0);
  BOOST_TEST(missing.err.find("/nonexistent/model") != std::string::npos, missing.err);
}
