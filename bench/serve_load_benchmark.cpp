// bench serve_load: a real `banyan serve` under many concurrent websocket clients. Each client
// sends its requests one after another; every text must equal the server's own answer to the
// same greedy request when alone (measured first, which is also the baseline). Reports throughput
// against that single-client baseline, p50/p99 time to first token and inter-token latency (as
// clients see them), errors, and the server's RSS before and after (before: after an untimed
// first round at the same concurrency, so that what grows is what the requests leave behind).
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <thread>

#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "bench/story_text.hpp"
#include "cli/options.hpp"
#include "testkit/http_client.hpp"
#include "testkit/server_process.hpp"

namespace banyan::bench {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
const std::string kHost = "127.0.0.1";

struct Sample {
  std::string text;
  double ttft_s = 0;
  std::vector<double> gaps_s;  // between successive token frames
  int tokens = 0;
  std::string error;
};

// One greedy request over `ws`, timed from the send.
Sample stream_one(testkit::WebSocket& ws, const std::string& prompt, int max_new) {
  Sample s;
  const auto sent = Clock::now();
  auto last = sent;
  ws.send(json{{"request_id", "r"}, {"prompt", prompt}, {"max_new_tokens", max_new}, {"temperature", 0}}.dump());
  for (;;) {
    const json f = json::parse(ws.receive());
    const auto now = Clock::now();
    if (f["type"] == "token") {
      if (!f.contains("id")) {  // held-back text at the end
        s.text += f["text"].get<std::string>();
        continue;
      }
      if (s.tokens++ == 0) s.ttft_s = std::chrono::duration<double>(now - sent).count();
      else s.gaps_s.push_back(std::chrono::duration<double>(now - last).count());
      last = now;
      s.text += f["text"].get<std::string>();
    } else {
      if (f["type"] != "done") s.error = f.dump();
      return s;
    }
  }
}

// What `clients` concurrent clients saw, each sending `requests` requests one after another.
struct Load {
  std::vector<double> ttft, gaps;
  int wrong = 0, errors = 0, done = 0;
  long long tokens = 0;
  double seconds = 0;
};

Load run_load(int port, int clients, int requests, int max_new, const std::string& prefix,
              const std::vector<std::string>& expected) {
  Load load;
  std::mutex mutex;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      try {
        testkit::WebSocket ws(kHost, port);
        for (int r = 0; r < requests; ++r) {
          const std::size_t p = std::size_t(c + r) % expected.size();
          Sample s = stream_one(ws, prefix + kStoryOpenings[p], max_new);
          std::lock_guard lock(mutex);
          ++load.done;
          load.tokens += s.tokens;
          if (!s.error.empty()) {
            ++load.errors;
            std::fprintf(stderr, "serve_load: client %d: %s\n", c, s.error.c_str());
            continue;
          }
          if (s.text != expected[p]) ++load.wrong;
          load.ttft.push_back(s.ttft_s);
          load.gaps.insert(load.gaps.end(), s.gaps_s.begin(), s.gaps_s.end());
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        ++load.errors;
        std::fprintf(stderr, "serve_load: client %d: %s\n", c, e.what());
      }
    });
  for (auto& t : threads) t.join();
  load.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return load;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(p * double(v.size() - 1) + 0.5))];
}

}  // namespace

int serve_load_benchmark(int argc, char** argv) {
  cli::Options o("serve_load", "[options] [-- SERVE_ARGS...]",
                 "Starts `banyan serve` on a free loopback port (with the embedded demo models unless serve\n"
                 "arguments follow --), measures one client alone, then many concurrent websocket clients,\n"
                 "checks every text against the lone client's, and prints throughput and latencies.");
  o.add("--banyan", "PATH", "the banyan binary", BANYAN_BINARY);
  o.add("--clients", "N", "concurrent websocket clients", "64");
  o.add("--requests", "N", "requests per client, one after another", "4");
  o.add("--max-new-tokens", "N", "tokens per request", "64");
  o.add("--prompts", "N", "distinct prompts, spread over the clients", "8");
  o.add("--prefix", "TEXT", "text before every prompt, as a system prompt is (a paged KV cache shares its blocks)", "");
  o.add("--out", "FILE", "result file", "serve_load.json");
  if (!o.parse(argc, argv)) return 0;
  const std::string prefix = o.text("--prefix");
  const int clients = o.integer("--clients"), requests = o.integer("--requests"), max_new = o.integer("--max-new-tokens");
  const int n_prompts = std::min<int>(o.integer("--prompts"), int(std::size(kStoryOpenings)));
  if (clients < 1 || requests < 1 || max_new < 1 || n_prompts < 1)
    throw cli::UsageError("--clients, --requests, --max-new-tokens and --prompts must be positive");
  std::vector<std::string> serve_args(o.positional().begin(), o.positional().end());
  if (std::find(serve_args.begin(), serve_args.end(), "--max-requests-per-batch") == serve_args.end())
    serve_args.insert(serve_args.end(), {"--max-requests-per-batch", "16"});

  testkit::ServerProcess server(o.text("--banyan"), serve_args);
  std::string shown;
  for (const auto& a : serve_args) shown += " " + a;
  std::printf("serve_load: banyan serve%s on port %d\n", shown.c_str(), server.port());

  // Baseline: each prompt alone, one client. Its texts are the expected ones.
  std::vector<std::string> expected;
  double alone_tokens = 0, alone_seconds = 0;
  {
    testkit::WebSocket ws(kHost, server.port());
    stream_one(ws, prefix + kStoryOpenings[0], 8);  // warm-up
    for (int p = 0; p < n_prompts; ++p) {
      const auto start = Clock::now();
      Sample s = stream_one(ws, prefix + kStoryOpenings[p], max_new);
      if (!s.error.empty()) throw std::runtime_error("baseline request failed: " + s.error);
      alone_seconds += std::chrono::duration<double>(Clock::now() - start).count();
      alone_tokens += s.tokens;
      expected.push_back(s.text);
    }
  }
  const long long rss_alone = server.rss_bytes();
  std::printf("serve_load: one client alone: %.1f tokens/s; server RSS %.1f MiB\n", alone_tokens / alone_seconds,
              double(rss_alone) / (1 << 20));
  // A first round at full concurrency, untimed: the server grows once to what that many
  // connections and full batches take (the growth does not depend on how many requests follow:
  // 11.3, 10.9 and 10.3 MiB for 2, 8 and 16 requests a client on 2026-12-03). A leak grows with
  // the requests: RSS after the measured load is compared with RSS after this round.
  const Load warm = run_load(server.port(), clients, 1, max_new, prefix, expected);
  const long long rss_before = server.rss_bytes();
  std::printf("serve_load: warm-up round of %d clients: %d done, %d wrong, %d errors; server RSS %.1f MiB\n", clients,
              warm.done, warm.wrong, warm.errors, double(rss_before) / (1 << 20));
  const Load load = run_load(server.port(), clients, requests, max_new, prefix, expected);
  const long long rss_after = server.rss_bytes();
  const auto& [ttft, gaps, wrong, errors, done, tokens, seconds] = load;

  const double throughput = double(tokens) / seconds, alone = alone_tokens / alone_seconds;
  std::printf("serve_load: %d clients x %d requests x %d tokens: %d done, %d wrong text, %d errors in %.1f s\n", clients,
              requests, max_new, done, wrong, errors, seconds);
  std::printf("serve_load: throughput %.1f tokens/s = %.2fx one client alone\n", throughput, throughput / alone);
  std::printf("serve_load: time to first token p50 %.0f ms, p99 %.0f ms; inter-token latency p50 %.1f ms, p99 %.1f ms\n",
              percentile(ttft, 0.5) * 1000, percentile(ttft, 0.99) * 1000, percentile(gaps, 0.5) * 1000,
              percentile(gaps, 0.99) * 1000);
  std::printf("serve_load: server RSS %.1f MiB before, %.1f MiB after (%.2fx)\n", double(rss_before) / (1 << 20),
              double(rss_after) / (1 << 20), double(rss_after) / double(rss_before));
  const int stop_code = server.stop(SIGTERM, std::chrono::seconds(60));
  write_json(o.text("--out"),
             {{"benchmark", "serve_load"},
              {"machine", machine_description()},
              {"serve_args", serve_args},
              {"prefix", prefix},
              {"clients", clients},
              {"requests_per_client", requests},
              {"max_new_tokens", max_new},
              {"completed", done},
              {"wrong_text", wrong},
              {"errors", errors},
              {"seconds", seconds},
              {"tokens_per_s", throughput},
              {"one_client_tokens_per_s", alone},
              {"throughput_vs_one_client", throughput / alone},
              {"ttft_p50_ms", percentile(ttft, 0.5) * 1000},
              {"ttft_p99_ms", percentile(ttft, 0.99) * 1000},
              {"itl_p50_ms", percentile(gaps, 0.5) * 1000},
              {"itl_p99_ms", percentile(gaps, 0.99) * 1000},
              {"rss_alone_mib", double(rss_alone) / (1 << 20)},
              {"rss_before_mib", double(rss_before) / (1 << 20)},
              {"rss_after_mib", double(rss_after) / (1 << 20)},
              {"server_exit_code", stop_code}});
  const bool ok = wrong + warm.wrong == 0 && errors + warm.errors == 0 && done == clients * requests && stop_code == 0 &&
                  std::abs(double(rss_after) / double(rss_before) - 1) <= 0.10;
  std::printf("serve_load: %s\n", ok ? "ok" : "FAILED (see above)");
  return ok ? 0 : 1;
}

}  // namespace banyan::bench
