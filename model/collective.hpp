#pragma once
// How the tensor shards of one pipeline stage combine their partial results (Megatron layout:
// each shard holds some attention heads and some MLP columns, so the outputs of o_proj and
// down_proj are partial sums over the shards). Implemented over UCX (actors/transport) between
// processes, in shared memory within one (engine/local_all_reduce) and through NCCL between the
// GPUs of one (gpu/nccl_collective); the model only calls it. No transport here.
#include <cstdint>
#include <span>
#include <vector>

#include "model/backend.hpp"
#include "model/tensor_shard.hpp"

namespace banyan {

// What a collective did so far: the bench's communication share.
struct CollectiveStats {
  std::uint64_t calls = 0, bytes = 0;
  double seconds = 0;  // spent inside all_reduce_sum, waiting for the other shards included
};

class Collective {
 public:
  virtual ~Collective() = default;
  // Every shard calls it with its partial values, in the same order and sizes; on return each
  // holds the element-wise sum, the same bits on every shard. Throws Error when a shard does
  // not take part in time.
  virtual void all_reduce_sum(std::span<float> values) = 0;
  // The same for a matrix on `backend`, where the model holds its partial sums. By default through
  // host memory (read, all_reduce_sum, write back); a collective that sums in the device's own
  // memory overrides it; its sum may still be in progress on return, ahead of whatever the
  // backend is asked next (a GPU's stream keeps that order).
  virtual void all_reduce_tensor(Backend& backend, Tensor values) {
    host_.resize(std::size_t(values.rows * values.cols));
    backend.read(values, host_);
    all_reduce_sum(host_);
    backend.write(host_, values);
  }
  // Called before each forward pass with a number that the stage's leading shard chose for it,
  // the same on every shard wherever it runs. A collective between processes tags its messages
  // with it, so a shard that restarted, or a pass that failed halfway, cannot mix with another
  // pass; one in shared memory needs nothing of it.
  virtual void begin_round(std::uint64_t round) { (void)round; }
  virtual CollectiveStats stats() const = 0;

 private:
  std::vector<float> host_;  // all_reduce_tensor's copy; a shard calls from one thread at a time
};

}  // namespace banyan
