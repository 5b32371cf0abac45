// banyan convert: writes a checkpoint in Banyan's own format (model/converted_file.hpp) with
// the linear layers in the chosen weight format, so later loads map it instead of converting.
#include <chrono>
#include <iostream>
#include <unistd.h>

#include "cli/commands.hpp"
#include "cli/model_setup.hpp"
#include "cli/option_types.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/llama_model.hpp"
#include "model/tensor_shard_weights.hpp"

namespace banyan::cli {

int convert_command(int argc, char** argv) {
  Options o("convert", "--model PATH --dtype FORMAT --out FILE",
            "Writes the model as one memory-mappable file with its linear layers in FORMAT (int4, int8, f16 or\n"
            "f32; norms stay f32, the embedding f16 or f32). `banyan generate --model FILE` loads it without\n"
            "converting again. The tokenizer is copied beside FILE as tokenizer.model.\n"
            "With --tensor-shards N, writes each tensor shard's part of the model to a file of its own instead\n"
            "(FILE's name with .shard1ofN, .shard2ofN, ... before its extension), which a model offloaded over\n"
            "N tensor shards needs (compute.offload with model.tensor_parallelism_degree N), and which is all a\n"
            "node holding that shard needs on its disk.");
  o.add("--model", "PATH", "the model to convert (any format Banyan reads)");
  o.add("--dtype", "FORMAT", "f32, f16, bf16, int8 or int4", "int4");
  o.add("--out", "FILE", "the file to write");
  o.add("--tensor-shards", "N", "write each of N tensor shards' weights to its own file", "1");
  o.add("--tokenizer", "FILE", "tokenizer to copy beside the output (default: tokenizer.model beside the weights)");
  if (!o.parse(argc, argv)) return 0;
  if (!o.has("--model") || !o.has("--out")) throw UsageError("--model and --out are required");
  const WeightFormat format = format_option(o, "--dtype");
  const int shards = o.integer("--tensor-shards");
  if (shards < 1) throw UsageError("--tensor-shards must be 1 or more");

  const auto start = std::chrono::steady_clock::now();
  const std::filesystem::path model = o.text("--model"), out = o.text("--out");
  auto source = open_weights(model);
  if (const TensorShard held = source->tensor_shard(); held.degree > 1)
    throw Error(model.string() + " holds tensor " + shard_text(held) + " of a model: convert the whole model");
  const EncodedWeights encoded(*source, {format, DType::f32});
  const bool tty = ::isatty(STDERR_FILENO);
  std::cerr << "banyan: converting " << model.string() << " (" << source->config().summary() << ") to "
            << format_name(format) << "\n";
  std::vector<std::filesystem::path> written;
  auto write = [&](const WeightSource& weights, const std::filesystem::path& file) {
    write_converted(weights, file, [&](int done, int total) {
      if (tty) std::cerr << "\rbanyan: " << file.filename().string() << ": " << done << "/" << total << " tensors\033[K" << std::flush;
    });
    if (tty) std::cerr << "\r\033[K";
    written.push_back(file);
  };
  if (shards == 1) {
    write(encoded, out);
  } else {
    check_tensor_shard(source->config(), {0, shards});
    for (int rank = 0; rank < shards; ++rank) {
      const TensorShard shard{rank, shards};
      write(TensorShardWeights(encoded, shard, {format, DType::f32}), shard_file(out, shard));
    }
  }

  const auto tokenizer = tokenizer_path(o, model);
  const auto tokenizer_out = out.parent_path().empty() ? std::filesystem::path("tokenizer.model")
                                                       : out.parent_path() / "tokenizer.model";
  if (std::filesystem::exists(tokenizer) && !std::filesystem::exists(tokenizer_out))
    std::filesystem::copy_file(tokenizer, tokenizer_out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& file : written)
    std::cerr << "banyan: wrote " << file.string() << ": " << std::filesystem::file_size(file) / double(1 << 20) << " MiB\n";
  std::cerr << "banyan: converted in " << seconds << " s\n";
  return 0;
}

}  // namespace banyan::cli
