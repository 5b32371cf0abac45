// The standalone bench programs: one binary per benchmark, named after it (bench/decode, ...).
#include <iostream>

#include "bench/benchmarks.hpp"
#include "cli/options.hpp"
#include "cli/process_memory.hpp"
#include "cpu/blas_setup.hpp"

#ifndef BENCH_FUNCTION
#error "BENCH_FUNCTION names the benchmark this program runs"
#endif

int main(int argc, char** argv) {
  banyan::cpu::restart_with_fast_blas(argv);
  banyan::cli::keep_freed_memory();
  try {
    return banyan::bench::BENCH_FUNCTION(argc - 1, argv + 1);
  } catch (const banyan::cli::UsageError& e) {
    std::cerr << argv[0] << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": error: " << e.what() << "\n";
    return 1;
  }
}
