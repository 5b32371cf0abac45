#pragma once
// The blocks of a paged KV cache (model/kv_layout.hpp) and which slot holds which: each slot's
// block table grows as its sequence does and is given back whole when the sequence ends. Pure
// bookkeeping; the caches on the compute nodes follow the tables each batch carries.
#include <cstdint>
#include <span>
#include <vector>

namespace banyan {

class KvBlockPool {
 public:
  KvBlockPool(int blocks, int block_rows, int slots);

  int block_rows() const { return block_rows_; }
  int total_blocks() const { return total_; }
  int free_blocks() const { return int(free_.size()); }
  int blocks_for(int rows) const { return (rows + block_rows_ - 1) / block_rows_; }
  // Rows the slot's table covers.
  int rows(int slot) const { return int(tables_[std::size_t(slot)].size()) * block_rows_; }
  std::span<const std::int32_t> table(int slot) const { return tables_[std::size_t(slot)]; }

  // Grows the slot's table to cover `rows` rows if the free blocks allow; else takes nothing.
  bool reserve(int slot, int rows);
  // Grows the slot's table towards `rows` rows as far as the free blocks allow; returns the
  // rows it covers then.
  int reserve_up_to(int slot, int rows);
  // Every block of the slot goes back to the pool.
  void release(int slot);

 private:
  int total_, block_rows_;
  std::vector<std::int32_t> free_;  // taken from the back: the lowest numbers first
  std::vector<std::vector<std::int32_t>> tables_;
};

}  // namespace banyan
