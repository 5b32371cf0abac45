#include "scheduler/kv_block_pool.hpp"

#include <algorithm>
#include <functional>
#include <new>
#include <string>

#include "model/error.hpp"

namespace banyan {

KvBlockPool::KvBlockPool(int blocks, int block_rows, int slots) try
    : block_rows_(block_rows),
      blocks_(std::size_t(std::max(blocks, 0))),
      tokens_(std::size_t(std::max(blocks, 0)) * std::size_t(std::max(block_rows, 0))),
      tables_(std::size_t(std::max(slots, 0))),
      cached_rows_(std::size_t(std::max(slots, 0)), 0) {
  if (blocks <= 0 || block_rows <= 0 || slots <= 0)
    throw Error("KV blocks: " + std::to_string(blocks) + " blocks of " + std::to_string(block_rows) + " rows for " +
                std::to_string(slots) + " slots");
  for (int b = blocks; b-- > 0;) free_.push_back(b);
} catch (const std::bad_alloc&) {
  throw Error("KV blocks: " + std::to_string(blocks) + " blocks of " + std::to_string(block_rows) +
              " rows are more than can be kept track of here (fewer tokens: --kv-cache-tokens)");
}

int KvBlockPool::take() {
  int b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = idle_.front();
    forget(b);
  }
  Block& block = blocks_[std::size_t(b)];
  block.holders = 1;
  ++block.life;
  return b;
}

void KvBlockPool::forget(int b) {
  Block& block = blocks_[std::size_t(b)];
  if (!block.cached) return;
  const auto [first, last] = index_.equal_range(block.key);
  for (auto it = first; it != last; ++it)
    if (it->second == b) {
      index_.erase(it);
      break;
    }
  if (block.holders == 0) idle_.erase(block.idle);
  block.cached = false;
}

bool KvBlockPool::reserve(int slot, int rows) {
  if (blocks_for(rows) - int(tables_[std::size_t(slot)].size()) > free_blocks()) return false;
  reserve_up_to(slot, rows);
  return true;
}

int KvBlockPool::reserve_up_to(int slot, int rows) {
  auto& table = tables_[std::size_t(slot)];
  while (int(table.size()) < blocks_for(rows) && free_blocks() > 0) table.push_back(take());
  return this->rows(slot);
}

void KvBlockPool::release(int slot) {
  auto& table = tables_[std::size_t(slot)];
  bool freed = false;
  // Last blocks first: they go idle first and are taken first, so that what stays cached longest
  // is the start of a sequence, where other sequences' prefixes match.
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    const int b = *it;
    Block& block = blocks_[std::size_t(b)];
    if (--block.holders > 0) continue;
    if (block.cached) {
      block.idle = idle_.insert(idle_.end(), b);
    } else {
      free_.push_back(b);
      freed = true;
    }
  }
  // Low numbers first again, so that a sequence that grows alone gets adjacent blocks (which
  // the CPU's attention reads as one run).
  if (freed) std::sort(free_.begin(), free_.end(), std::greater<>());
  table.clear();
  cached_rows_[std::size_t(slot)] = 0;
}

std::uint64_t KvBlockPool::key_of(int parent, std::span<const std::int32_t> tokens) const {
  // FNV-1a over the parent's number and life and the tokens; find() compares them exactly.
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  };
  mix(std::uint64_t(std::int64_t(parent)));
  mix(parent >= 0 ? blocks_[std::size_t(parent)].life : 0);
  for (auto t : tokens) mix(std::uint64_t(std::uint32_t(t)));
  return h;
}

int KvBlockPool::find(int parent, std::span<const std::int32_t> tokens) const {
  const std::uint64_t parent_life = parent >= 0 ? blocks_[std::size_t(parent)].life : 0;
  const auto [first, last] = index_.equal_range(key_of(parent, tokens));
  for (auto it = first; it != last; ++it) {
    const Block& b = blocks_[std::size_t(it->second)];
    const auto held = std::span(tokens_).subspan(std::size_t(it->second) * std::size_t(block_rows_), std::size_t(block_rows_));
    if (b.parent == parent && b.parent_life == parent_life && std::equal(held.begin(), held.end(), tokens.begin()))
      return it->second;
  }
  return -1;
}

int KvBlockPool::share_prefix(int slot, std::span<const std::int32_t> tokens, int max_rows) {
  auto& table = tables_[std::size_t(slot)];
  if (!table.empty()) throw Error("KV blocks: sharing a prefix into slot " + std::to_string(slot) + ", which holds blocks");
  const int whole = std::min(int(tokens.size()), max_rows) / block_rows_;
  for (int j = 0; j < whole; ++j) {
    const int b = find(table.empty() ? -1 : table.back(),
                       tokens.subspan(std::size_t(j) * std::size_t(block_rows_), std::size_t(block_rows_)));
    if (b < 0) break;
    Block& block = blocks_[std::size_t(b)];
    if (block.holders++ == 0) idle_.erase(block.idle);
    table.push_back(b);
  }
  return cached_rows_[std::size_t(slot)] = rows(slot);
}

void KvBlockPool::cache_prefix(int slot, std::span<const std::int32_t> tokens, int rows) {
  const auto& table = tables_[std::size_t(slot)];
  int& done = cached_rows_[std::size_t(slot)];
  const int whole = std::min({rows, int(tokens.size()), this->rows(slot)}) / block_rows_;
  for (int j = done / block_rows_; j < whole; ++j) {
    const int b = table[std::size_t(j)], parent = j > 0 ? table[std::size_t(j - 1)] : -1;
    const auto held = tokens.subspan(std::size_t(j) * std::size_t(block_rows_), std::size_t(block_rows_));
    Block& block = blocks_[std::size_t(b)];
    // A block cached already, or holding what another cached block holds, stays as it is.
    if (block.cached || find(parent, held) >= 0) continue;
    block.cached = true;
    block.parent = parent;
    block.parent_life = parent >= 0 ? blocks_[std::size_t(parent)].life : 0;
    block.key = key_of(parent, held);
    std::copy(held.begin(), held.end(), tokens_.begin() + std::ptrdiff_t(b) * block_rows_);
    index_.emplace(block.key, b);
  }
  done = std::max(done, whole * block_rows_);
}

}  // namespace banyan
