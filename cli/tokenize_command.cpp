// banyan tokenize: text -> token ids, or ids -> text with --decode.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/model_setup.hpp"
#include "model/error.hpp"
#include "model/weight_source.hpp"

namespace banyan::cli {

int tokenize_command(int argc, char** argv) {
  Options o("tokenize", "[--model PATH] [--tokenizer FILE] (TEXT | --decode ID...)",
            "Prints the token ids of TEXT (BOS first), or with --decode the text of the given ids.");
  o.add("--model", "PATH", "model folder or file; its config gives BOS/EOS and its folder the tokenizer",
        std::string(BANYAN_DEFAULT_MODEL));
  o.add("--tokenizer", "FILE", "SentencePiece tokenizer.model (default: tokenizer.model beside the weights)");
  o.flag("--decode", "read token ids and print their text");
  o.flag("--no-bos", "do not put BOS before the ids");
  if (!o.parse(argc, argv)) return 0;
  if (o.positional().empty()) throw UsageError(o.has("--decode") ? "no token ids given" : "no text given");

  const auto path = model_path(o);
  const auto config = open_weights(path)->config();
  const Tokenizer tok(tokenizer_path(o, path), config.bos_token_id, config.eos_token_id);

  if (o.has("--decode")) {
    std::vector<std::int32_t> ids;
    for (const auto& a : o.positional()) {
      try {
        std::size_t used = 0;
        const long id = std::stol(a, &used);
        if (used != a.size()) throw std::invalid_argument(a);
        ids.push_back(std::int32_t(id));
      } catch (const std::exception&) {
        throw UsageError("'" + a + "' is not a token id");
      }
    }
    std::cout << tok.decode(ids) << "\n";
    return 0;
  }
  std::string text;
  for (const auto& a : o.positional()) text += (text.empty() ? "" : " ") + a;
  const auto ids = tok.encode(text, !o.has("--no-bos"));
  for (std::size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
  std::cout << "\n";
  return 0;
}

}  // namespace banyan::cli
