#include "scheduler/kv_block_pool.hpp"

#include <algorithm>
#include <functional>
#include <string>

#include "model/error.hpp"

namespace banyan {

KvBlockPool::KvBlockPool(int blocks, int block_rows, int slots)
    : total_(blocks), block_rows_(block_rows), tables_(std::size_t(std::max(slots, 0))) {
  if (blocks <= 0 || block_rows <= 0 || slots <= 0)
    throw Error("KV blocks: " + std::to_string(blocks) + " blocks of " + std::to_string(block_rows) + " rows for " +
                std::to_string(slots) + " slots");
  for (int b = blocks; b-- > 0;) free_.push_back(b);
}

bool KvBlockPool::reserve(int slot, int rows) {
  if (blocks_for(rows) - int(tables_[std::size_t(slot)].size()) > free_blocks()) return false;
  reserve_up_to(slot, rows);
  return true;
}

int KvBlockPool::reserve_up_to(int slot, int rows) {
  auto& table = tables_[std::size_t(slot)];
  while (int(table.size()) < blocks_for(rows) && !free_.empty()) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return this->rows(slot);
}

void KvBlockPool::release(int slot) {
  auto& table = tables_[std::size_t(slot)];
  free_.insert(free_.end(), table.rbegin(), table.rend());
  // Low numbers first again, so that a sequence that grows alone gets adjacent blocks (which
  // the CPU's attention reads as one run).
  std::sort(free_.begin(), free_.end(), std::greater<>());
  table.clear();
}

}  // namespace banyan
