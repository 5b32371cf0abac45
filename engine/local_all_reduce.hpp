#pragma once
// Tensor shards in one process summing their partial results in shared memory: each shard adds
// up one chunk of every shard's values (in rank order, so every shard gets the same bits), then
// copies the whole sum back. Two barriers a call and no copies through a transport, which is
// what shards of a stage on one node need (bench parallel: the UCX ring costs more than the
// compute it shares out at decode sizes). Shards in different processes use the ring
// (actors/transport/ring_all_reduce.hpp).
#include <memory>
#include <vector>

#include "model/collective.hpp"

namespace banyan {

// `size` ranks (0..size-1 of the result); each must be called from its own thread.
std::vector<std::shared_ptr<Collective>> local_all_reduce(int size);

}  // namespace banyan
