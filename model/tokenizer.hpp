#pragma once
// Text <-> token ids through a SentencePiece model (tokenizer.model), with the model's own
// BOS/EOS ids, and a streaming decoder that emits text token by token as valid UTF-8.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace banyan {

class Tokenizer {
 public:
  // Throws Error naming the file when it is missing or not a SentencePiece model.
  Tokenizer(const std::filesystem::path& model_file, int bos_id, int eos_id);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  // Token ids of `text`, with BOS first when `add_bos`.
  std::vector<std::int32_t> encode(const std::string& text, bool add_bos = true) const;
  std::string decode(const std::vector<std::int32_t>& ids) const;

  int vocab_size() const;
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }

  // What one token contributes to the text: raw bytes for byte-fallback pieces (<0x0A>),
  // the piece with '▁' as a space otherwise, nothing for control tokens and ids the tokenizer
  // does not have.
  std::string token_bytes(std::int32_t id) const;
  bool is_byte(std::int32_t id) const;
  bool adds_dummy_prefix() const { return dummy_prefix_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int bos_id_, eos_id_;
  bool dummy_prefix_ = true;
};

// Turns a stream of token ids into text pieces, holding back the bytes of a character until
// all of them have arrived, so every piece it returns is valid UTF-8.
class StreamDecoder {
 public:
  // Where the ids start: at the beginning of a text, whose first '▁' is the tokenizer's dummy
  // prefix and prints nothing, or after a prompt, where it is the space between two words.
  enum class Start { text, after_prompt };
  explicit StreamDecoder(const Tokenizer& tokenizer, Start start = Start::text)
      : tok_(&tokenizer), at_start_(start == Start::text) {}
  // The text that `id` completes (possibly empty).
  std::string push(std::int32_t id);
  // Whatever is still held back, with incomplete characters replaced by U+FFFD.
  std::string finish();

 private:
  const Tokenizer* tok_;
  std::string pending_;
  bool at_start_;
};

// The text that generated `ids` add after their prompt.
std::string generated_text(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids);

// Length of the longest prefix of `s` that does not end inside a UTF-8 character.
std::size_t complete_utf8_prefix(const std::string& s);

}  // namespace banyan
