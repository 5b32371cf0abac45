// The client library (banyan/client.hpp) against a real `banyan serve --actor-port 0`: from
// separate processes (`banyan client`, examples/client_library) and from this one; the text
// equals `banyan generate`'s, cancel and timeout work, a client that dies frees its request, a
// server that dies ends its requests with an error.
#define BOOST_TEST_MODULE test_client_library
#include <banyan/client.hpp>
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <future>
#include <regex>

#include "support/test_support.hpp"
#include "testkit/server_process.hpp"

using namespace banyan;
using testkit::ServerProcess;

namespace {

const std::string kPrompt = "Once upon a time";

std::string banyan_command(const std::string& args) {
  return test::shell_quote(test::banyan_binary().string()) + " " + args;
}

// A server with the client library's port open.
struct ActorServer {
  ServerProcess process;
  int actor_port = 0;
  explicit ActorServer(std::vector<std::string> args = {})
      : process(test::banyan_binary(), with_actor_port(std::move(args))) {
    std::smatch m;
    const std::string out = process.output();
    BOOST_TEST_REQUIRE(std::regex_search(out, m, std::regex("client library \\(banyan/client.hpp\\) on [^:]+:([0-9]+)")));
    actor_port = std::stoi(m[1]);
  }
  static std::vector<std::string> with_actor_port(std::vector<std::string> args) {
    args.insert(args.end(), {"--actor-port", "0"});
    return args;
  }
};

// A long generation submitted from this process, with its first text and its end to wait for.
// Both tests that use it wait for the end, so no callback outlives it.
struct LongGeneration {
  static constexpr int kTokens = 500;
  std::promise<void> first_text;
  std::promise<GenerationResult> done;
  std::future<GenerationResult> ended = done.get_future();
  bool told = false;
  std::uint64_t id = 0;

  explicit LongGeneration(Client& client) {
    GenerationParams p;
    p.max_new_tokens = kTokens;
    id = client.submit(kPrompt, p, [this](const std::string&) {
      if (!told) first_text.set_value(), told = true;
    }, [this](const GenerationResult& r) { done.set_value(r); });
  }
  bool started_within(std::chrono::seconds limit) {
    return first_text.get_future().wait_for(limit) == std::future_status::ready;
  }
  bool ended_within(std::chrono::seconds limit) { return ended.wait_for(limit) == std::future_status::ready; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(banyan_client_prints_what_banyan_generate_prints) {
  ActorServer server;
  for (const std::string mode : {"speculative", "incremental"}) {
    BOOST_TEST_CONTEXT("mode " << mode) {
      const std::string args = "--prompt " + test::shell_quote(kPrompt) + " --max-new-tokens 40 --mode " + mode;
      const auto expected = test::run_command(banyan_command("generate " + args));
      const auto got = test::run_command(banyan_command("client --port " + std::to_string(server.actor_port) + " " + args));
      BOOST_TEST_REQUIRE(got.exit_code == 0, got.err);
      BOOST_TEST(got.out == expected.out);
      BOOST_TEST(got.err.find("finish length") != std::string::npos, got.err);
    }
  }
  BOOST_TEST(server.process.stop(SIGTERM, std::chrono::seconds(30)) == 0, server.process.error_output());
}

BOOST_AUTO_TEST_CASE(the_example_program_runs_against_the_server) {
  ActorServer server;
  const auto r = test::run_command(test::shell_quote(BANYAN_CLIENT_EXAMPLE) + " 127.0.0.1 " + std::to_string(server.actor_port));
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const auto expected = test::run_command(banyan_command("generate --max-new-tokens 32"));
  BOOST_TEST(r.out.find("[stream] " + expected.out) != std::string::npos, r.out);
  BOOST_TEST(r.out.find("[2] The cat sat on the mat and") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(cancel_and_timeout_from_this_process) {
  ActorServer server;
  Client client("127.0.0.1", server.actor_port);
  LongGeneration g(client);
  BOOST_TEST_REQUIRE(g.started_within(std::chrono::seconds(60)));
  client.cancel(g.id);
  BOOST_TEST_REQUIRE(g.ended_within(std::chrono::seconds(60)));
  const GenerationResult r = g.ended.get();
  BOOST_TEST(r.finish_reason == "cancelled");
  BOOST_TEST(r.tokens.size() < std::size_t(LongGeneration::kTokens));
  BOOST_TEST(!r.text.empty());

  GenerationParams long_run;
  long_run.max_new_tokens = LongGeneration::kTokens;
  BOOST_CHECK_THROW(client.generate(kPrompt, long_run, {}, std::chrono::milliseconds(1)), ClientError);
  // The client still works afterwards.
  GenerationParams short_run;
  short_run.max_new_tokens = 5;
  BOOST_TEST(client.generate(kPrompt, short_run).finish_reason == "length");
}

BOOST_AUTO_TEST_CASE(a_client_that_dies_frees_its_request) {
  ActorServer server({"--max-requests-per-batch", "1"});
  {
    testkit::ChildProcess doomed({test::banyan_binary().string(), "client", "--port", std::to_string(server.actor_port),
                                  "--max-new-tokens", "500"});
    doomed.wait_for_output(std::regex("Once upon a time."), std::chrono::seconds(60));  // its first text
    doomed.stop(SIGKILL, std::chrono::seconds(10));
  }
  // With one slot, this waits for the dead client's request unless it was cancelled.
  Client client("127.0.0.1", server.actor_port);
  GenerationParams p;
  p.max_new_tokens = 8;
  const auto start = std::chrono::steady_clock::now();
  const GenerationResult r = client.generate(kPrompt, p, {}, std::chrono::seconds(60));
  BOOST_TEST(r.finish_reason == "length", r.error << "\nserver log:\n" << server.process.error_output());
  const auto waited = std::chrono::steady_clock::now() - start;
  BOOST_TEST(std::chrono::duration<double>(waited).count() < 30.0);
}

BOOST_AUTO_TEST_CASE(a_server_that_dies_mid_request_ends_it_with_an_error) {
  ActorServer server;
  Client client("127.0.0.1", server.actor_port);
  LongGeneration g(client);
  BOOST_TEST_REQUIRE(g.started_within(std::chrono::seconds(60)));
  server.process.stop(SIGKILL, std::chrono::seconds(10));

  BOOST_TEST_REQUIRE(g.ended_within(std::chrono::seconds(30)));
  const GenerationResult r = g.ended.get();
  BOOST_TEST(r.finish_reason == "error");
  BOOST_TEST(r.error.find("lost the server") != std::string::npos, r.error);
  BOOST_TEST(!r.text.empty());  // what came before the end is kept
  // Later requests fail at once too.
  GenerationParams p;
  p.max_new_tokens = 8;
  const GenerationResult next = client.generate(kPrompt, p, {}, std::chrono::seconds(30));
  BOOST_TEST(next.finish_reason == "error");
  BOOST_TEST(!next.error.empty());
}

BOOST_AUTO_TEST_CASE(nothing_listening_is_a_clear_error) {
  try {
    Client client("127.0.0.1", 1);
    BOOST_FAIL("connected to port 1");
  } catch (const ClientError& e) {
    BOOST_TEST(std::string(e.what()).find("127.0.0.1:1") != std::string::npos, e.what());
  }
}
