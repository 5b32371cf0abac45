#include "bench/bench_util.hpp"

#include <algorithm>
#include <cblas.h>
#include <fstream>
#include <iostream>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace banyan::bench {

double stream_read_gb_per_s(int threads, std::size_t bytes) {
  const std::size_t n = bytes / sizeof(std::uint64_t);
  std::vector<std::uint64_t> data(n);
  for (std::size_t i = 0; i < n; ++i) data[i] = i;  // touch every page
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
    Stopwatch clock;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        const std::size_t begin = n * std::size_t(t) / std::size_t(threads), end = n * std::size_t(t + 1) / std::size_t(threads);
        // Four independent sums: the loads, not the adds, set the pace (vectorised at -O2/-O3).
        std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (std::size_t i = begin; i + 4 <= end; i += 4) s0 += data[i], s1 += data[i + 1], s2 += data[i + 2], s3 += data[i + 3];
        sums[std::size_t(t)] = s0 + s1 + s2 + s3;
      });
    for (auto& w : workers) w.join();
    const double s = clock.seconds();
    volatile std::uint64_t keep = 0;
    for (auto x : sums) keep = keep + x;
    best = std::max(best, double(bytes) / s / 1e9);
  }
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

std::size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::size_t(u.ru_maxrss) * 1024;
}

void write_json(const std::string& path, const nlohmann::json& result) {
  std::ofstream out(path);
  out << result.dump(2) << "\n";
  if (!out) throw std::runtime_error(path + ": cannot write the result file");
  std::cout << "results written to " << path << "\n";
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
