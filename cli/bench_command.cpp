// banyan bench NAME: runs one of the benchmarks in bench/.
#include <cstring>
#include <iostream>

#include "bench/benchmarks.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"

namespace banyan::cli {

int bench_command(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: banyan bench NAME [options]\n\n"
      "benchmarks:\n"
      "  decode      prompt/decode tokens/s per weight format, against memory bandwidth\n"
      "  specinfer   speculative vs incremental decoding: tokens/s and accepted tokens per step\n"
      "  accuracy    f16/int8/int4 against f32: top-1 agreement on real text\n"
      "  serve_load  many websocket clients against a `banyan serve` it starts: throughput, latencies\n"
      "  offload     the LLM's weights streamed under a memory budget vs resident, incremental and speculative\n"
      "  transport   the UCX data plane over loopback: throughput and round trips per message size\n"
      "  parallel    the LLM in pipeline stages, in one and in two processes, against it whole\n"
      "  sampling    forming a sampling distribution from a row of logits on the host, against a full sort\n\n"
      "`banyan bench NAME --help` lists a benchmark's options.\n";
  if (argc < 1 || std::strcmp(argv[0], "--help") == 0) {
    std::cout << kUsage;
    return argc < 1 ? 2 : 0;
  }
  const std::string name = argv[0];
  if (name == "decode") return bench::decode_benchmark(argc - 1, argv + 1);
  if (name == "specinfer") return bench::specinfer_benchmark(argc - 1, argv + 1);
  if (name == "offload") return bench::offload_benchmark(argc - 1, argv + 1);
  if (name == "parallel") return bench::parallel_benchmark(argc - 1, argv + 1);
  if (name == "sampling") return bench::sampling_benchmark(argc - 1, argv + 1);
  if (name == "transport") return bench::transport_benchmark(argc - 1, argv + 1);
  if (name == "accuracy") return bench::accuracy_benchmark(argc - 1, argv + 1);
  if (name == "serve_load") return bench::serve_load_benchmark(argc - 1, argv + 1);
  throw UsageError("unknown benchmark '" + name + "'");
}

}  // namespace banyan::cli
