#include "server/text_stream.hpp"

#include <algorithm>

namespace banyan::server {

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop)
    : decoder_(tokenizer, StreamDecoder::Start::after_prompt), stop_(std::move(stop)) {}

std::string TextStream::push(std::int32_t token) {
  if (stopped_) return "";
  ++tokens_;
  held_ += decoder_.push(token);
  std::size_t first = std::string::npos;
  for (const auto& s : stop_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Keep back the longest end of the text that some stop string starts with.
  std::size_t keep = 0;
  for (const auto& s : stop_)
    for (std::size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string TextStream::finish() {
  if (stopped_) return "";
  std::string out = held_ + decoder_.finish();
  held_.clear();
  return out;
}

}  // namespace banyan::server
