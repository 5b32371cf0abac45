#include "model/tokenizer.hpp"

#include <sentencepiece_processor.h>

#include "model/error.hpp"

namespace banyan {

namespace {

constexpr std::string_view kSpaceSymbol = "\xe2\x96\x81";  // U+2581, SentencePiece's space

std::string with_spaces(std::string piece) {
  std::string out;
  for (std::size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
      out += ' ';
      i += kSpaceSymbol.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

// Byte-fallback pieces are spelled "<0xAB>".
int byte_value(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  return std::stoi(piece.substr(3, 2), nullptr, 16);
}

}  // namespace

Tokenizer::Tokenizer(const std::filesystem::path& model_file, int bos_id, int eos_id)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), bos_id_(bos_id), eos_id_(eos_id) {
  if (!std::filesystem::exists(model_file))
    throw Error(model_file.string() + ": tokenizer not found (pass --tokenizer FILE)");
  const auto status = sp_->Load(model_file.string());
  if (!status.ok()) throw Error(model_file.string() + ": not a SentencePiece tokenizer model: " + status.ToString());
  if (bos_id < 0 || bos_id >= vocab_size() || eos_id < 0 || eos_id >= vocab_size())
    throw Error(model_file.string() + ": the model's bos/eos ids (" + std::to_string(bos_id) + ", " +
                std::to_string(eos_id) + ") are outside the tokenizer's " + std::to_string(vocab_size()) +
                " pieces");
  // Tokenizers trained with add_dummy_prefix put '▁' before the first word; decoding drops it.
  std::vector<std::string> pieces;
  sp_->Encode("a", &pieces).IgnoreError();
  dummy_prefix_ = !pieces.empty() && pieces[0].rfind(kSpaceSymbol, 0) == 0;
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<std::int32_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error("tokenizer: cannot encode text: " + status.ToString());
  std::vector<std::int32_t> out;
  out.reserve(ids.size() + 1);
  if (add_bos) out.push_back(bos_id_);
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  StreamDecoder d(*this);
  std::string text;
  for (auto id : ids) text += d.push(id);
  return text + d.finish();
}

std::string Tokenizer::token_bytes(std::int32_t id) const {
  // Ids past the tokenizer (a model whose vocabulary is padded beyond it) have no text.
  if (id < 0 || id >= vocab_size() || sp_->IsControl(id)) return {};
  if (sp_->IsUnknown(id)) return " \xe2\x81\x87 ";  // what SentencePiece prints for <unk>
  const std::string& piece = sp_->IdToPiece(id);
  if (sp_->IsByte(id)) return std::string(1, char(byte_value(piece)));
  return with_spaces(piece);
}

bool Tokenizer::is_byte(std::int32_t id) const { return id >= 0 && id < vocab_size() && sp_->IsByte(id); }

std::size_t complete_utf8_prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes to the start of the last character.
  std::size_t i = s.size();
  int back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xc0) == 0x80) --i, ++back;
  if (i == 0) return s.size();
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  const int need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
  return back < need ? i - 1 : s.size();
}

namespace {

// Replaces every malformed sequence with U+FFFD, so what leaves the decoder is valid UTF-8.
std::string sanitize_utf8(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int len = c < 0x80 ? 1 : (c >= 0xc2 && c < 0xe0) ? 2 : (c >= 0xe0 && c < 0xf0) ? 3
                  : (c >= 0xf0 && c < 0xf5) ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok) {
      out.append(s, i, std::size_t(len));
      i += std::size_t(len);
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string StreamDecoder::push(std::int32_t id) {
  std::string bytes = tok_->token_bytes(id);
  if (bytes.empty()) return {};
  if (at_start_ && tok_->adds_dummy_prefix() && bytes[0] == ' ' && !tok_->is_byte(id)) bytes.erase(0, 1);
  at_start_ = false;
  pending_ += bytes;
  const std::size_t n = complete_utf8_prefix(pending_);
  std::string ready = sanitize_utf8(pending_.substr(0, n));
  pending_.erase(0, n);
  return ready;
}

std::string StreamDecoder::finish() {
  std::string rest = sanitize_utf8(pending_);
  pending_.clear();
  return rest;
}

std::string generated_text(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids) {
  StreamDecoder d(tokenizer, StreamDecoder::Start::after_prompt);
  std::string text;
  for (auto id : ids) text += d.push(id);
  return text + d.finish();
}

}  // namespace banyan
