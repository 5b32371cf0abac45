#pragma once
// The backend a `--device` choice names: the CPU backend, or the CUDA backend, which is a plugin
// (libbanyan_cuda.so, gpu/CMakeLists.txt says why) loaded on first use and kept loaded.
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/backend.hpp"
#include "model/collective.hpp"

namespace banyan {

// device "cpu" (threads: 0 = one per core) or "cuda". Throws UsageError-like Error for an
// unknown device, Error when the CUDA backend cannot be loaded or finds no device.
// `gpu`: which GPU a CUDA backend computes on.
std::unique_ptr<Backend> make_backend(const std::string& device, int threads, int gpu = 0);
// How many GPUs the CUDA plugin finds (loads it; throws as make_backend does without it).
int cuda_device_count();

// The backends of `count` tensor shards that one process holds and computes side by side, and
// how a stage of them sums. CPU: `count` backends sharing `threads`, summing in shared memory
// (engine/local_all_reduce). CUDA: a GPU each when the machine has `count`, summing in device
// memory through NCCL (gpu/nccl_collective); with fewer, all on GPU 0, summing through host
// memory (NCCL takes one GPU per rank).
struct ShardBackends {
  std::vector<std::unique_ptr<Backend>> backends;
  bool nccl = false;
  // A new group for one stage's shards, rank i computing on backends[i].
  std::vector<std::shared_ptr<Collective>> collectives() const;
  std::string description;  // for the log: where the shards run and how they sum
};
ShardBackends make_shard_backends(const std::string& device, int threads, int count);
// A group summing through NCCL (loads the CUDA plugin): rank i for backends[i], each a CUDA
// backend on a GPU of its own.
std::vector<std::shared_ptr<Collective>> nccl_all_reduce(std::span<Backend* const> backends);

// What the CUDA plugin says about device 0 and the libraries; its memory read bandwidth (GB/s).
// Both load the plugin; they throw as make_backend does.
std::string cuda_description();
double cuda_read_gb_per_s();

}  // namespace banyan
