// The client library in a program of your own, in FlexFlow Serve's order: choose an LLM and its
// SSMs, choose a generation config, generate.
//
// 1. The LLM and the SSMs are chosen where they run, when the server starts:
//      build/banyan serve --model models/demo-llm --ssm models/demo-ssm --actor-port 8081
// 2-3. This program connects, sets a generation config, and generates: several prompts at once
//      (continuous batching on the server), then one streamed as it is made.
//      build/examples/client_library 127.0.0.1 8081
#include <banyan/client.hpp>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: client_library HOST ACTOR_PORT   (a `banyan serve --actor-port` must be running)\n";
    return 2;
  }
  try {
    banyan::Client client(argv[1], std::stoi(argv[2]));

    banyan::GenerationParams config;  // greedy; speculative when the server has SSMs
    config.max_new_tokens = 32;

    // Several prompts at once: each ends with its own callback.
    const std::vector<std::string> prompts = {"Lily and her mom went to the park.", "Tim had a big red ball.",
                                              "The cat sat on the mat and"};
    std::mutex mutex;
    std::condition_variable all_done;
    std::vector<banyan::GenerationResult> results(prompts.size());
    std::size_t done = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i)
      client.submit(prompts[i], config, {}, [&, i](const banyan::GenerationResult& r) {
        std::lock_guard lock(mutex);
        results[i] = r;
        ++done;
        all_done.notify_one();
      });
    {
      std::unique_lock lock(mutex);
      all_done.wait(lock, [&] { return done == prompts.size(); });
    }
    for (std::size_t i = 0; i < prompts.size(); ++i)
      std::cout << "[" << i << "] " << prompts[i] << results[i].text << "  (" << results[i].finish_reason << ", "
                << results[i].accepted_per_step << " tokens per LLM step)\n";

    // One more, streamed piece by piece.
    std::cout << "[stream] Once upon a time" << std::flush;
    const auto r = client.generate("Once upon a time", config, [](const std::string& text) { std::cout << text << std::flush; });
    std::cout << "\n";
    return r.finish_reason == "error" ? 1 : 0;
  } catch (const banyan::ClientError& e) {
    std::cerr << "client_library: " << e.what() << "\n";
    return 1;
  }
}
