#pragma once
// A read-only memory mapping of a whole file. Checkpoints are read through mappings so that
// loading touches each byte once and truncation is caught by bounds checks, never by a SIGBUS.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace banyan {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws Error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }

  // The bytes [offset, offset + length); throws Error naming the file and `what` when the
  // range runs past the end of the file.
  std::span<const std::byte> slice(std::uint64_t offset, std::uint64_t length,
                                   const std::string& what) const;

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace banyan
