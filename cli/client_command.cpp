// banyan client: one generation from a running `banyan serve --actor-port N`, through the client
// library (banyan/client.hpp), streamed to stdout as generate does.
#include <banyan/client.hpp>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "model/error.hpp"

namespace banyan::cli {

int client_command(int argc, char** argv) {
  Options o("client", "--port N [--host H] [--prompt TEXT] [options]",
            "Asks a running `banyan serve --actor-port N` for one generation through the client library and\n"
            "streams the text to stdout (the prompt first, like generate); a summary goes to stderr.");
  o.add("--host", "ADDRESS", "the server's address", "127.0.0.1");
  o.add("--port", "N", "the server's actor port (banyan serve --actor-port)");
  o.add("--prompt", "TEXT", "the prompt", "Once upon a time");
  o.add("--max-new-tokens", "N", "tokens to generate", "128");
  o.add("--temperature", "T", "sampling temperature; 0 is greedy", "0");
  o.add("--top-p", "P", "nucleus sampling mass", "1");
  o.add("--top-k", "K", "sample among the K most likely tokens (0: all)", "0");
  o.add("--seed", "N", "random seed", "0");
  o.add("--mode", "speculative|incremental", "incremental turns the server's speculation off for this request",
        "speculative");
  o.add("--timeout", "SECONDS", "give up (and cancel) after this long", "600");
  if (!o.parse(argc, argv)) return 0;
  if (!o.has("--port")) throw UsageError("--port is required (the server's --actor-port)");
  const std::string mode = o.text("--mode");
  if (mode != "speculative" && mode != "incremental") throw UsageError("--mode must be 'speculative' or 'incremental'");

  GenerationParams p;
  p.max_new_tokens = o.integer("--max-new-tokens");
  p.temperature = float(o.number("--temperature"));
  p.top_p = float(o.number("--top-p"));
  p.top_k = o.integer("--top-k");
  p.seed = std::uint64_t(o.integer("--seed"));
  p.speculate = mode == "speculative";
  const auto timeout = std::chrono::milliseconds(long(o.number("--timeout") * 1000));

  Client client(o.text("--host"), o.integer("--port"));
  const std::string prompt = o.text("--prompt");
  std::cout << prompt << std::flush;
  const GenerationResult r = client.generate(prompt, p, [](const std::string& text) { std::cout << text << std::flush; },
                                             timeout);
  std::cout << "\n";
  if (r.finish_reason == "error") throw Error("the server failed the request: " + r.error);
  std::cerr << "banyan client: " << r.prompt_tokens << " prompt + " << r.tokens.size() << " generated tokens, finish "
            << r.finish_reason << ", " << r.accepted_per_step << " tokens per LLM step\n";
  return 0;
}

}  // namespace banyan::cli
