#pragma once
// Tensor shards on the GPUs of one process summing their partial results in device memory
// through NCCL. The communicators of a group are made together (ncclCommInitAll), one per GPU;
// each shard's sums are queued on its backend's stream, after the kernels queued before them and
// ahead of those queued after, so neither the host nor the other GPUs' hosts wait for them.
// NCCL lets each rank's thread drive its own communicator, but not two communicators of one GPU
// from two threads at once: the groups of a process's stages never overlap, because the engine
// runs one step at a time and a step goes through the stages in turn.
#include <memory>
#include <span>
#include <vector>

#include "model/collective.hpp"

namespace banyan::gpu {

// One collective per backend (rank i sums for backends[i]); each a CUDA backend on a GPU of its
// own. Throws Error otherwise, or when NCCL cannot make the communicators.
std::vector<std::shared_ptr<Collective>> nccl_all_reduce(std::span<Backend* const> backends);

}  // namespace banyan::gpu
