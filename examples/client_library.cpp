// The C++ client library in one program: a "server" actor system serves the embedded demo model's
// scheduler on a TCP port, and a "client" actor system (as another process or node would) asks it
// for a story and prints the tokens as they stream in.
//   build/examples/client_library ["prompt"]
#include <caf/all.hpp>
#include <cstdio>
#include <iostream>

#include "actors/client.hpp"
#include "actors/scheduler.hpp"
#include "cpu/cpu_backend.hpp"
#include "model/tokenizer.hpp"
#include "model/weight_source.hpp"

using namespace banyan;

int main(int argc, char** argv) try {
  const std::string prompt = argc > 1 ? argv[1] : "Once upon a time";

  // The server side: the demo LLM, its SSM, an engine and the scheduler actor serving it.
  auto backend = cpu::make_cpu_backend({2});
  auto llm_weights = open_weights(BANYAN_DEMO_LLM);
  auto ssm_weights = open_weights(BANYAN_DEMO_SSM);
  LlamaModel llm(*llm_weights, *backend), ssm(*ssm_weights, *backend);
  Engine engine(llm, {&ssm}, {});
  caf::actor_system_config server_config;
  actors::configure_for_network(server_config);
  caf::actor_system server(server_config);
  auto scheduler = actors::spawn_scheduler(server, engine);
  const std::uint16_t port = actors::publish_scheduler(server, scheduler, 0);
  std::fprintf(stderr, "server: scheduler published at 127.0.0.1:%u\n", unsigned(port));

  {
    // The client side: it only needs the address and the tokenizer.
    caf::actor_system_config client_config;
    actors::configure_for_network(client_config);
    caf::actor_system client_system(client_config);
    actors::Client client(client_system, "127.0.0.1", port);
    const auto& c = llm_weights->config();
    const Tokenizer tokenizer(std::string(BANYAN_DEMO_LLM) + "/tokenizer.model", c.bos_token_id, c.eos_token_id);
    StreamDecoder decoder(tokenizer);

    actors::GenerateRequest request;
    request.prompt = tokenizer.encode(prompt);
    request.max_new_tokens = 120;
    std::cout << prompt << std::flush;
    const auto result = client.generate(request, [&](std::span<const std::int32_t> tokens) {
      for (auto id : tokens) std::cout << decoder.push(id);
      std::cout << std::flush;
    });
    std::cout << decoder.finish() << "\n";
    std::fprintf(stderr, "client: %d tokens, finish reason %s, %.2f tokens per LLM step%s%s\n",
                 result.done.generated_tokens, result.done.finish_reason.c_str(), result.done.accepted_per_step,
                 result.done.error.empty() ? "" : ", error: ", result.done.error.c_str());
  }
  caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
  scheduler = nullptr;  // the server's actor system waits for its detached scheduler at exit
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "client_library: %s\n", e.what());
  return 1;
}
