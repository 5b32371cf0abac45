#include "bench/bench_util.hpp"

#include <algorithm>
#include <barrier>
#include <cblas.h>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include "model/sampler.hpp"

namespace banyan::bench {

double stream_read_gb_per_s(int threads, std::size_t bytes) {
  const std::size_t n = bytes / sizeof(float);
  std::vector<float> data(n, 1.0f);  // touches every page before timing
  // Each thread sums its part with 16 independent accumulators (vectorised at -O3), so the
  // loads, not the adds, set the pace. A barrier starts every pass on all threads at once.
  constexpr int kPasses = 5;
  std::barrier sync(threads + 1);
  std::vector<double> seconds(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  double best = 0;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      const std::size_t begin = n * std::size_t(t) / std::size_t(threads), end = n * std::size_t(t + 1) / std::size_t(threads);
      for (int pass = 0; pass < kPasses; ++pass) {
        sync.arrive_and_wait();
        Stopwatch clock;
        float acc[16] = {};
        for (std::size_t i = begin; i + 16 <= end; i += 16)
          for (int k = 0; k < 16; ++k) acc[k] += data[i + std::size_t(k)];
        seconds[std::size_t(t)] = clock.seconds();
        volatile float keep = acc[0] + acc[15];
        (void)keep;
        sync.arrive_and_wait();
      }
    });
  for (int pass = 0; pass < kPasses; ++pass) {
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    best = std::max(best, double(bytes) / *std::max_element(seconds.begin(), seconds.end()) / 1e9);
  }
  for (auto& w : workers) w.join();
  return best;
}

double sgemm_gflops(int threads, int m, int n, int k) {
  std::vector<float> a(std::size_t(m) * k, 0.5f), b(std::size_t(k) * n, 0.25f), c(std::size_t(m) * n);
  openblas_set_num_threads(threads);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    Stopwatch clock;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
    best = std::max(best, 2.0 * m * n * k / clock.seconds() / 1e9);
  }
  openblas_set_num_threads(1);
  return best;
}

std::vector<std::vector<std::int32_t>> random_prompts(int count, int length, int vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<std::int32_t>> prompts;
  for (int i = 0; i < count; ++i) {
    std::vector<std::int32_t> p = {1};
    for (int k = 1; k < length; ++k) p.push_back(std::int32_t(3 + rng.next() % std::uint64_t(vocab - 3)));
    prompts.push_back(p);
  }
  return prompts;
}

void write_json(const std::string& path, const nlohmann::json& result) {
  std::ofstream out(path);
  out << result.dump(2) << "\n";
  if (!out) throw std::runtime_error(path + ": cannot write the result file");
  std::cout << "results written to " << path << "\n";
}

std::filesystem::path models_dir() {
  const char* dir = std::getenv("BANYAN_MODELS_DIR");
  return dir && *dir ? std::filesystem::path(dir) : std::filesystem::path(BANYAN_MODELS_DIR);
}

std::string machine_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " hardware threads";
}

}  // namespace banyan::bench
