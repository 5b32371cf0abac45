#pragma once
// Banyan's own checkpoint format, written by `banyan convert`: one file holding the config and
// every tensor already in its backend format, so loading maps the file instead of converting.
//   bytes 0..7   "BANYAN01"
//   bytes 8..15  length of the JSON header (little-endian u64)
//   JSON header  {"config": <Hugging Face config.json>, "tensors": {name: {"format", "rows",
//                "cols", "offset", "bytes"}}, and for one tensor shard's file (`banyan convert
//                --tensor-shards`) "tensor_shard": {"rank", "degree"}}
//   data         each tensor at its offset from the start of the file, 64-byte aligned
#include <filesystem>
#include <functional>
#include <memory>

#include "model/mapped_file.hpp"
#include "model/weight_source.hpp"

namespace banyan {

inline constexpr char kConvertedMagic[8] = {'B', 'A', 'N', 'Y', 'A', 'N', '0', '1'};

bool is_converted_file(const MappedFile& file);
std::unique_ptr<WeightSource> open_converted(const std::filesystem::path& file);

// Writes every tensor of `weights` (encoded as read_encoded gives it, or f32) to `file`;
// `progress(done, total)` after each.
void write_converted(const WeightSource& weights, const std::filesystem::path& file,
                     const std::function<void(int, int)>& progress = {});

}  // namespace banyan
