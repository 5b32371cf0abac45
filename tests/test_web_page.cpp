// The web page at / in a real browser: headless Chromium, driven over the DevTools protocol,
// types a prompt, presses Generate, and sees the streamed text (the same as `banyan generate`)
// with tokens per second and accepted tokens per step. A screenshot is saved as web_page.png.
// Skipped when Chromium is not installed.
#define BOOST_TEST_MODULE test_web_page
#include <boost/beast/core/detail/base64.hpp>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "testkit/http_client.hpp"
#include "testkit/server_process.hpp"
#include "support/test_support.hpp"

using namespace banyan;
using nlohmann::json;

namespace {

const std::string kHost = "127.0.0.1";

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (std::filesystem::exists(p)) return p;
  test::skip_program("no Chromium installed (Debian package: chromium)");
}

// One browser tab, spoken to over the DevTools protocol.
class Tab {
 public:
  Tab(const std::string& host, int port, const std::string& path) : ws_(host, port, path) {}

  json call(const std::string& method, const json& params = json::object()) {
    const int id = next_id_++;
    ws_.send(json{{"id", id}, {"method", method}, {"params", params}}.dump());
    for (;;) {  // events come in between; the answer carries our id
      const json reply = json::parse(ws_.receive(std::chrono::seconds(60)));
      if (reply.value("id", -1) != id) continue;
      if (reply.contains("error")) throw std::runtime_error(method + ": " + reply["error"].dump());
      return reply["result"];
    }
  }
  json evaluate(const std::string& expression) {
    return call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}})["result"].value("value", json());
  }
  // Polls `expression` until it is true.
  void wait_until(const std::string& expression, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (evaluate(expression) != true) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("timed out waiting for " + expression);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

 private:
  testkit::WebSocket ws_;
  int next_id_ = 1;
};

int devtools_port(const std::filesystem::path& profile) {
  const auto file = profile / "DevToolsActivePort";
  for (int i = 0; i < 600; ++i) {
    std::ifstream in(file);
    int port = 0;
    if (in >> port && port > 0) return port;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("Chromium did not open its DevTools port");
}

std::vector<char> decode_base64(const std::string& text) {
  namespace b64 = boost::beast::detail::base64;  // Beast's own decoder (a detail, but stable since 1.70)
  std::vector<char> out(b64::decoded_size(text.size()));
  out.resize(b64::decode(out.data(), text.data(), text.size()).first);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_prompt_typed_in_the_page_streams_its_story) {
  const std::string chromium = find_chromium();
  const std::string prompt = "Once upon a time, a little dog";
  const auto expected = test::run_command(test::shell_quote(test::banyan_binary().string()) + " generate --prompt " +
                                          test::shell_quote(prompt) + " --max-new-tokens 40");
  BOOST_TEST_REQUIRE(expected.exit_code == 0, expected.err);

  testkit::ServerProcess server(test::banyan_binary(), {});
  test::TempDir profile;
  testkit::ChildProcess browser({chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--remote-debugging-port=0", "--user-data-dir=" + profile.path().string(),
                                "--window-size=1000,700", "about:blank"});
  const int port = devtools_port(profile.path());
  std::string tab_path;
  for (const auto& target : json::parse(testkit::http_request(kHost, port, "GET", "/json/list").body))
    if (target["type"] == "page") tab_path = target["webSocketDebuggerUrl"].get<std::string>();
  BOOST_TEST_REQUIRE(!tab_path.empty());
  tab_path = tab_path.substr(tab_path.find("/devtools/"));

  Tab tab(kHost, port, tab_path);
  tab.call("Page.navigate", {{"url", "http://" + kHost + ":" + std::to_string(server.port()) + "/"}});
  tab.wait_until("document.readyState === 'complete' && document.getElementById('model').textContent.startsWith('model:')",
                 std::chrono::seconds(60));
  BOOST_TEST(tab.evaluate("document.getElementById('model').textContent") == "model: demo-llm");

  // Type the prompt as a user would, set the length, press Generate.
  tab.evaluate("const p = document.getElementById('prompt'); p.value = ''; p.focus(); true");
  tab.call("Input.insertText", {{"text", prompt}});
  tab.evaluate("document.getElementById('max-tokens').value = '40'; true");
  tab.evaluate("document.getElementById('generate').click(); true");
  tab.wait_until("document.body.dataset.state === 'done' || document.body.dataset.state === 'error'",
                 std::chrono::seconds(120));
  BOOST_TEST(tab.evaluate("document.getElementById('error').textContent") == "");

  const std::string shown = tab.evaluate("document.getElementById('output').textContent");
  BOOST_TEST(shown + "\n" == expected.out);
  const std::string stats = tab.evaluate("document.getElementById('stats').textContent");
  BOOST_TEST(stats.find("40 tokens, ") == 0u, stats);
  BOOST_TEST(stats.find(" tokens/s") != std::string::npos, stats);
  BOOST_TEST(stats.find(" accepted tokens per step") != std::string::npos, stats);

  const json shot = tab.call("Page.captureScreenshot", {{"format", "png"}});
  const std::vector<char> png = decode_base64(shot["data"]);
  BOOST_TEST_REQUIRE(png.size() > 1000u);
  BOOST_TEST(std::string(png.data() + 1, 3) == "PNG");
  test::write_bytes("web_page.png", png);
  BOOST_TEST_MESSAGE("screenshot: " << std::filesystem::absolute("web_page.png").string());
}
