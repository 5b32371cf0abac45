#pragma once
// The tokens of one forward pass and, for each, where it sits: which sequence (KV-cache slot),
// which RoPE position, which cache row receives its key/value, and which rows it may attend to.
#include <cstdint>
#include <span>
#include <vector>

namespace banyan {

struct ForwardBatch {
  std::vector<std::int32_t> tokens;
  std::vector<std::int32_t> positions;
  std::vector<std::int32_t> slots;
  std::vector<std::int32_t> cache_rows;
  // Token i attends to rows [0, visible[i]) of its slot, plus row visible[i] + j for every bit j
  // of tree_masks[i]: a causal token has visible = its row + 1 and no mask; a token-tree token
  // sees the committed prefix and its own ancestors (itself included) in the tree.
  std::vector<std::int32_t> visible;
  std::vector<std::uint64_t> tree_masks;
  // Indices of the tokens whose logits the caller wants, in the order they are returned.
  std::vector<std::int32_t> logit_rows;
  // 0: those rows' logits come back whole; k > 0: each as its summary of the k best tokens
  // (model/logit_summary.hpp), formed where the logits are: enough for greedy decoding.
  int summary_k = 0;
  // Summarised rows sampled from the nucleus of the whole vocabulary: each logit row's
  // temperature (0: not such a row) and top_p, or both empty. Such a row's summary holds its
  // weight at that temperature, and the row comes back whole too, after the summaries, when its
  // nucleus reaches beyond the summary's tokens (LogitRows).
  std::vector<float> nucleus_temperature, nucleus_top_p;
  // A paged KV cache (model/kv_layout.hpp): token i's sequence's block table is
  // kv_blocks[kv_block_begin[i], kv_block_end[i]). All three empty in the fixed layout.
  std::vector<std::int32_t> kv_blocks, kv_block_begin, kv_block_end;

  std::size_t size() const { return tokens.size(); }

  std::span<const std::int32_t> block_table(std::size_t i) const {
    if (kv_blocks.empty()) return {};
    return std::span(kv_blocks).subspan(std::size_t(kv_block_begin[i]), std::size_t(kv_block_end[i] - kv_block_begin[i]));
  }
  // Gives every token its slot's block table, table_of(slot) (a span of block numbers), each
  // slot's table sent once.
  template <class TableOf>
  void attach_block_tables(TableOf&& table_of) {
    kv_blocks.clear();
    kv_block_begin.assign(size(), 0);
    kv_block_end.assign(size(), 0);
    std::vector<std::int32_t> seen;  // slot, begin, end
    for (std::size_t i = 0; i < size(); ++i) {
      std::size_t j = 0;
      while (j < seen.size() && seen[j] != slots[i]) j += 3;
      if (j == seen.size()) {
        const auto table = table_of(slots[i]);
        seen.insert(seen.end(), {slots[i], std::int32_t(kv_blocks.size()), std::int32_t(kv_blocks.size() + table.size())});
        kv_blocks.insert(kv_blocks.end(), table.begin(), table.end());
      }
      kv_block_begin[i] = seen[j + 1];
      kv_block_end[i] = seen[j + 2];
    }
  }

  // Appends a token of ordinary left-to-right decoding: stored at row `position`, seeing every
  // row up to and including its own.
  void add_causal(std::int32_t token, std::int32_t slot, std::int32_t position, bool want_logits) {
    if (want_logits) logit_rows.push_back(std::int32_t(tokens.size()));
    tokens.push_back(token);
    positions.push_back(position);
    slots.push_back(slot);
    cache_rows.push_back(position);
    visible.push_back(position + 1);
    tree_masks.push_back(0);
  }
};

}  // namespace banyan
