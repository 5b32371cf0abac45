#pragma once
// The blocks of a paged KV cache (model/kv_layout.hpp) and which slot holds which: each slot's
// block table grows as its sequence does and is given back when the sequence ends. Pure
// bookkeeping; the caches on the compute nodes follow the tables each batch carries.
//
// Prefix caching: a block whose rows all hold computed tokens can be cached, known by its
// tokens and the block before it. A new sequence whose first tokens are those of cached blocks
// takes those blocks into its table instead of computing their rows again (a block may be in
// several tables; its rows are then only read). A cached block no table holds stays cached
// until its room is needed: new blocks come from the never-cached ones first, then from the
// cached ones least recently let go.
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace banyan {

class KvBlockPool {
 public:
  KvBlockPool(int blocks, int block_rows, int slots);

  int block_rows() const { return block_rows_; }
  int total_blocks() const { return int(blocks_.size()); }
  // Blocks a sequence may take: the free ones and the cached ones no table holds.
  int free_blocks() const { return int(free_.size() + idle_.size()); }
  int cached_blocks() const { return int(index_.size()); }
  int blocks_for(int rows) const { return (rows + block_rows_ - 1) / block_rows_; }
  // Rows the slot's table covers.
  int rows(int slot) const { return int(tables_[std::size_t(slot)].size()) * block_rows_; }
  std::span<const std::int32_t> table(int slot) const { return tables_[std::size_t(slot)]; }

  // Grows the slot's table to cover `rows` rows if the free blocks allow; else takes nothing.
  bool reserve(int slot, int rows);
  // Grows the slot's table towards `rows` rows as far as the free blocks allow; returns the
  // rows it covers then.
  int reserve_up_to(int slot, int rows);
  // The slot's blocks leave its table: cached ones stay cached, the others are free.
  void release(int slot);

  // Gives an empty slot the cached blocks that hold `tokens` from the start, as many whole
  // blocks as match and fit in `max_rows` rows; returns the rows they hold.
  int share_prefix(int slot, std::span<const std::int32_t> tokens, int max_rows);
  // The slot's blocks that hold rows [0, rows) of `tokens` whole become cached (those already
  // cached stay as they are).
  void cache_prefix(int slot, std::span<const std::int32_t> tokens, int rows);

 private:
  struct Block {
    int holders = 0;            // tables that hold it
    bool cached = false;
    std::uint64_t key = 0;      // of its tokens and the block before it, while cached
    int parent = -1;            // the block before it in the sequence that cached it
    std::uint64_t parent_life = 0;
    std::uint64_t life = 0;     // grows each time the block is taken for new rows: a block
                                // cached after an older life of its parent is no child of it
    std::list<int>::iterator idle;  // its place in idle_ while cached and held by none
  };
  int take();  // a free block, else the cached one let go longest ago (forgotten)
  void forget(int block);
  // The cached child of `parent` (-1: a first block) holding `tokens`, or -1.
  int find(int parent, std::span<const std::int32_t> tokens) const;
  std::uint64_t key_of(int parent, std::span<const std::int32_t> tokens) const;

  int block_rows_;
  std::vector<Block> blocks_;
  std::vector<std::int32_t> free_;  // never cached, or forgotten; taken from the back: lowest first
  std::list<int> idle_;             // cached and held by none, the longest idle first
  std::unordered_multimap<std::uint64_t, int> index_;  // cached blocks by key
  std::vector<std::int32_t> tokens_;                   // block_rows tokens per block, while cached
  std::vector<std::vector<std::int32_t>> tables_;
  std::vector<int> cached_rows_;  // per slot: its leading rows already offered to cache_prefix
};

}  // namespace banyan
