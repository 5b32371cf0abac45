#pragma once
// The text of one generation as it streams: token ids become valid UTF-8 pieces, and the text
// ends before the first stop string. Text that might be the start of a stop string is held
// back until the next tokens decide.
#include <string>
#include <vector>

#include "model/tokenizer.hpp"

namespace banyan::server {

class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop);

  // The text that `token` makes final (possibly empty). After a stop string appears it returns
  // the text before it, stopped() turns true, and later tokens are ignored.
  std::string push(std::int32_t token);
  // Whatever is still held back (nothing after a stop).
  std::string finish();
  bool stopped() const { return stopped_; }
  // Tokens pushed up to and including the one that completed a stop string.
  int tokens() const { return tokens_; }

 private:
  StreamDecoder decoder_;
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
  int tokens_ = 0;
};

}  // namespace banyan::server
