// banyan: the one binary. `banyan COMMAND --help` describes each command.
#include <cstring>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/process_memory.hpp"
#include "cpu/blas_setup.hpp"
#include "model/error.hpp"

namespace {

constexpr const char* kUsage =
    "usage: banyan COMMAND [options]\n"
    "\n"
    "Banyan serves LLaMA-family models with tree-based speculative inference.\n"
    "\n"
    "commands:\n"
    "  serve      serve a model over HTTP: websocket streaming, OpenAI-style completions, metrics\n"
    "  client     one generation from a running server, through the client library\n"
    "  launch     check a cluster config and show where each stage would run (--dry-run)\n"
    "  stage      serve some of the LLM's layers as a pipeline stage for a server elsewhere\n"
    "  generate   generate text from a prompt (or a JSON file of prompts) and stream it\n"
    "  tokenize   show the token ids of a text, or the text of token ids\n"
    "  convert    write a model as one int4/int8/f16/f32 file that loads without converting\n"
    "  bench      run a benchmark: decode, specinfer, accuracy, serve_load, offload, transport (`banyan bench --help`)\n"
    "\n"
    "`banyan COMMAND --help` lists the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  banyan::cpu::restart_with_fast_blas(argv);
  banyan::cli::keep_freed_memory();
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "serve") return banyan::cli::serve_command(argc - 2, argv + 2);
    if (command == "client") return banyan::cli::client_command(argc - 2, argv + 2);
    if (command == "launch") return banyan::cli::launch_command(argc - 2, argv + 2);
    if (command == "stage") return banyan::cli::stage_command(argc - 2, argv + 2);
    if (command == "generate") return banyan::cli::generate_command(argc - 2, argv + 2);
    if (command == "tokenize") return banyan::cli::tokenize_command(argc - 2, argv + 2);
    if (command == "convert") return banyan::cli::convert_command(argc - 2, argv + 2);
    if (command == "bench") return banyan::cli::bench_command(argc - 2, argv + 2);
    std::cerr << "banyan: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
  } catch (const banyan::cli::UsageError& e) {
    std::cerr << "banyan " << command << ": " << e.what() << " (see banyan " << command << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "banyan " << command << ": error: " << e.what() << "\n";
    return 1;
  }
}
