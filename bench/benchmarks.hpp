#pragma once
// The benchmarks, runnable as `banyan bench NAME` or as the standalone bench/NAME programs.
// Each takes the arguments after its name and returns an exit code.

namespace banyan::bench {

int decode_benchmark(int argc, char** argv);
int specinfer_benchmark(int argc, char** argv);
int accuracy_benchmark(int argc, char** argv);
int serve_load_benchmark(int argc, char** argv);  // starts `banyan serve` itself
int offload_benchmark(int argc, char** argv);
int transport_benchmark(int argc, char** argv);  // the UCX data plane
int parallel_benchmark(int argc, char** argv);   // pipeline stages in one and two processes
int sampling_benchmark(int argc, char** argv);   // forming a sampling distribution on the host

}  // namespace banyan::bench
