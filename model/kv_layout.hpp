#pragma once
// Where a sequence's key/value rows lie among a KV cache's rows. A cache holds
// KvCacheSpec::rows() rows per layer. In the fixed layout slot s owns `capacity` of them, back
// to back. A paged cache (block_rows > 0) hands its rows out in blocks of block_rows as
// sequences grow: a sequence's block table lists its blocks, and its row r lies in row
// r % block_rows of block table[r / block_rows]. The scheduler keeps the tables
// (scheduler/kv_block_pool.hpp) and sends them with each batch, so every pipeline stage and
// tensor shard places rows alike.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "model/dtype.hpp"

namespace banyan {

struct KvPaging {
  int block_rows = 0;  // rows per block; 0: the fixed layout
  int blocks = 0;      // blocks in the cache
  bool on() const { return block_rows > 0; }
};

// How a cache holds its sequences, whatever the model.
struct KvLayout {
  int slots = 0;     // sequences held at once
  int capacity = 0;  // rows (tokens) of one sequence at most
  KvPaging paging;
};

// "8 slots of 2112 tokens", or "paged: 4096 tokens in 256 blocks of 16, for up to 8 requests".
inline std::string describe(const KvLayout& l) {
  if (!l.paging.on()) return std::to_string(l.slots) + " slots of " + std::to_string(l.capacity) + " tokens";
  return "paged: " + std::to_string(l.paging.blocks * l.paging.block_rows) + " tokens in " + std::to_string(l.paging.blocks) +
         " blocks of " + std::to_string(l.paging.block_rows) + ", for up to " + std::to_string(l.slots) + " requests";
}

struct KvCacheSpec {
  int layers = 0;
  int slots = 0;
  int capacity = 0;
  int kv_heads = 0;
  int head_dim = 0;
  DType dtype = DType::f32;  // f32, f16 or bf16
  KvPaging paging;

  bool paged() const { return paging.on(); }
  // Rows per layer.
  std::int64_t rows() const {
    return paged() ? std::int64_t(paging.blocks) * paging.block_rows : std::int64_t(slots) * capacity;
  }
};

// One sequence's rows: row r lies at cache row block(r / block_rows) * block_rows + r % block_rows.
// The fixed layout is one block of `capacity` rows, the slot's own.
struct KvRowMap {
  int block_rows = 1;
  bool paged = false;
  std::span<const std::int32_t> table;  // paged: the sequence's blocks
  std::int32_t slot = 0;                // the fixed layout's block

  std::int32_t block(int j) const { return paged ? table[std::size_t(j)] : slot; }
  std::int64_t row(int r) const { return std::int64_t(block(r / block_rows)) * block_rows + r % block_rows; }
  // Rows the table covers.
  int covered() const { return (paged ? int(table.size()) : 1) * block_rows; }
  // Calls f(first cache row, count) for rows [0, end) in runs of consecutive cache rows (one
  // run in the fixed layout; adjacent blocks join).
  template <class F>
  void runs(int end, F&& f) const {
    for (int r = 0; r < end;) {
      const std::int64_t first = row(r);
      int count = std::min(block_rows - r % block_rows, end - r);
      while (r + count < end && row(r + count) == first + count) count += std::min(block_rows, end - r - count);
      f(first, count);
      r += count;
    }
  }
};

// The rows of `slot` under `spec`, given the slot's block table in a paged cache.
inline KvRowMap kv_row_map(const KvCacheSpec& spec, std::int32_t slot, std::span<const std::int32_t> blocks) {
  if (spec.paged()) return {spec.paging.block_rows, true, blocks, 0};
  return {spec.capacity, false, {}, slot};
}

}  // namespace banyan
