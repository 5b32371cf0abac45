#pragma once
// What the benchmarks share: a clock, the machine's measured memory read bandwidth and sgemm
// speed (the baselines every figure is reported against), peak RSS, and the JSON result file.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/process_memory.hpp"

namespace banyan::bench {

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Read bandwidth of main memory in GB/s: the best of several passes summing `bytes` with
// `threads` threads (a STREAM-like read kernel).
double stream_read_gb_per_s(int threads, std::size_t bytes = std::size_t(1) << 30);

// OpenBLAS sgemm GFLOP/s for [m x k] * [k x n] with `threads` OpenBLAS threads.
double sgemm_gflops(int threads, int m, int n, int k);

// `count` prompts of `length` tokens: BOS, then seeded random ids above the special ones.
std::vector<std::vector<std::int32_t>> random_prompts(int count, int length, int vocab, std::uint64_t seed);

// Writes `result` to `path` (pretty-printed); prints where it went.
void write_json(const std::string& path, const nlohmann::json& result);

// The repository's models/ (the demo pair): BANYAN_MODELS_DIR from the environment when set (a
// bench run from a copy of the tree elsewhere, as scripts/gpu-check does), else the source tree's.
std::filesystem::path models_dir();

// A short description of the machine (CPU model, cores) for result files.
std::string machine_description();

}  // namespace banyan::bench
