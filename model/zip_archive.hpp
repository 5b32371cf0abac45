#pragma once
// Reads the directory of a zip archive whose members are stored uncompressed, which is how
// PyTorch's torch.save writes them; ZIP64 archives (members or files over 4 GiB) included.
#include <map>
#include <memory>
#include <string>

#include "model/mapped_file.hpp"

namespace banyan {

class ZipArchive {
 public:
  explicit ZipArchive(std::shared_ptr<const MappedFile> file);

  struct Member {
    std::uint64_t offset = 0;  // byte offset of the member's data in the file
    std::uint64_t size = 0;
    bool stored = true;        // false when compressed (which PyTorch never does)
  };
  const std::map<std::string, Member>& members() const { return members_; }
  const MappedFile& file() const { return *file_; }
  // The member's bytes; throws Error naming the archive and the member.
  std::span<const std::byte> read(const std::string& name) const;

  // True when the file starts like a zip archive.
  static bool looks_like_zip(const MappedFile& file);

 private:
  std::shared_ptr<const MappedFile> file_;
  std::map<std::string, Member> members_;
};

}  // namespace banyan
