#include "model/zip_archive.hpp"

#include <optional>

#include "model/error.hpp"

namespace banyan {

namespace {

constexpr std::uint32_t kLocalHeader = 0x04034b50;
constexpr std::uint32_t kCentralHeader = 0x02014b50;
constexpr std::uint32_t kEndOfDirectory = 0x06054b50;
constexpr std::uint32_t kZip64Locator = 0x07064b50;
constexpr std::uint32_t kZip64EndOfDirectory = 0x06064b50;

// Little-endian field reader over a byte range that the caller has bounds-checked.
struct Fields {
  std::span<const std::byte> b;
  std::uint64_t get(std::size_t at, int width) const {
    std::uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | std::uint64_t(b[at + i]);
    return v;
  }
};

}  // namespace

bool ZipArchive::looks_like_zip(const MappedFile& file) {
  return file.size() >= 4 && Fields{file.bytes()}.get(0, 4) == kLocalHeader;
}

ZipArchive::ZipArchive(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) {
  const MappedFile& f = *file_;
  const std::string where = f.path().string();
  if (f.size() < 22) throw Error(where + ": truncated zip archive (no end-of-directory record)");

  // The end-of-directory record sits in the last 22 + up to 65535 comment bytes.
  const std::size_t search_from = f.size() > 22 + 65535 ? f.size() - 22 - 65535 : 0;
  const Fields all{f.bytes()};
  std::optional<std::size_t> found;
  for (std::size_t p = f.size() - 22 + 1; p-- > search_from;) {
    if (all.get(p, 4) == kEndOfDirectory) {
      found = p;
      break;
    }
  }
  if (!found) throw Error(where + ": truncated or corrupt zip archive (end-of-directory record not found)");
  const std::size_t eocd = *found;

  std::uint64_t count = all.get(eocd + 10, 2);
  std::uint64_t dir_size = all.get(eocd + 12, 4);
  std::uint64_t dir_offset = all.get(eocd + 16, 4);
  if (eocd >= 20 && all.get(eocd - 20, 4) == kZip64Locator) {
    const std::uint64_t z64 = all.get(eocd - 20 + 8, 8);
    const Fields rec{f.slice(z64, 56, "the ZIP64 end-of-directory record")};
    if (rec.get(0, 4) != kZip64EndOfDirectory) throw Error(where + ": corrupt ZIP64 end-of-directory record");
    count = rec.get(32, 8);
    dir_size = rec.get(40, 8);
    dir_offset = rec.get(48, 8);
  }

  const Fields dir{f.slice(dir_offset, dir_size, "the zip central directory")};
  std::size_t at = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (at + 46 > dir_size || dir.get(at, 4) != kCentralHeader)
      throw Error(where + ": corrupt zip central directory (entry " + std::to_string(i) + ")");
    const auto method = dir.get(at + 10, 2);
    std::uint64_t size = dir.get(at + 24, 4);  // uncompressed
    const auto name_len = dir.get(at + 28, 2);
    const auto extra_len = dir.get(at + 30, 2);
    const auto comment_len = dir.get(at + 32, 2);
    std::uint64_t local = dir.get(at + 42, 4);
    if (at + 46 + name_len + extra_len + comment_len > dir_size)
      throw Error(where + ": corrupt zip central directory (entry " + std::to_string(i) + ")");
    std::string name(reinterpret_cast<const char*>(dir.b.data() + at + 46), name_len);

    // ZIP64 extra field: the 64-bit values of the fields that hold 0xffffffff, in order.
    std::size_t x = at + 46 + name_len;
    const std::size_t x_end = x + extra_len;
    while (x + 4 <= x_end) {
      const auto id = dir.get(x, 2), len = dir.get(x + 2, 2);
      if (id == 0x0001) {
        std::size_t v = x + 4;
        if (size == 0xffffffffu && v + 8 <= x + 4 + len) size = dir.get(v, 8), v += 8;
        if (dir.get(at + 20, 4) == 0xffffffffu && v + 8 <= x + 4 + len) v += 8;  // compressed size
        if (local == 0xffffffffu && v + 8 <= x + 4 + len) local = dir.get(v, 8);
      }
      x += 4 + len;
    }

    const Fields lh{f.slice(local, 30, "the local header of zip member '" + name + "'")};
    if (lh.get(0, 4) != kLocalHeader) throw Error(where + ": corrupt local header of zip member '" + name + "'");
    const std::uint64_t data = local + 30 + lh.get(26, 2) + lh.get(28, 2);
    members_[name] = Member{data, size, method == 0};
    at += 46 + name_len + extra_len + comment_len;
  }
}

std::span<const std::byte> ZipArchive::read(const std::string& name) const {
  auto it = members_.find(name);
  if (it == members_.end()) throw Error(file_->path().string() + ": zip member '" + name + "' is missing");
  if (!it->second.stored)
    throw Error(file_->path().string() + ": zip member '" + name + "' is compressed; only stored members are supported");
  return file_->slice(it->second.offset, it->second.size, "zip member '" + name + "'");
}

}  // namespace banyan
