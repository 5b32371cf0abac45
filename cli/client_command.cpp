// banyan client: one generation from a running `banyan serve --actor-port N`, through the client
// library (banyan/client.hpp), streamed to stdout as generate does.
#include <banyan/client.hpp>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/option_types.hpp"
#include "cli/options.hpp"
#include "model/error.hpp"

namespace banyan::cli {

int client_command(int argc, char** argv) {
  Options o("client", "--port N [--host H] [--prompt TEXT] [options]",
            "Asks a running `banyan serve --actor-port N` for one generation through the client library and\n"
            "streams the text to stdout (the prompt first, like generate); a summary goes to stderr.");
  o.add("--host", "ADDRESS", "the server's address", "127.0.0.1");
  o.add("--port", "N", "the server's actor port (banyan serve --actor-port)");
  add_generation_options(o);
  o.add("--timeout", "SECONDS", "give up (and cancel) after this long", "600");
  if (!o.parse(argc, argv)) return 0;
  if (!o.has("--port")) throw UsageError("--port is required (the server's --actor-port)");
  std::string mode;
  const GenerationConfig g = generation_option_values(o, "speculative", mode);
  GenerationParams p;
  p.max_new_tokens = g.max_new_tokens;
  p.temperature = g.sampling.temperature;
  p.top_p = g.sampling.top_p;
  p.top_k = g.sampling.top_k;
  p.seed = g.sampling.seed;
  p.speculate = g.speculate;
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
