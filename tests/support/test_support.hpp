#pragma once
// What the tests share: where the fixtures are, scratch folders, running a command, and
// writing small random checkpoints and tokenizers of their own.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "model/dtype.hpp"
#include "model/llama_config.hpp"
#include "model/weight_source.hpp"

namespace banyan::test {

// The committed fixtures (tests/fixtures).
std::filesystem::path fixtures_dir();
// The source tree's root.
std::filesystem::path source_dir();
// The `banyan` binary under test.
std::filesystem::path banyan_binary();
// ../shared (the one setting: the BANYAN_SHARED_DIR environment variable, else the path CMake
// was configured with); nullopt when it is absent.
std::optional<std::filesystem::path> shared_dir();

// Exits the test program with CTest's "skipped" code, saying why.
[[noreturn]] void skip_program(const std::string& why);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs a shell command line, capturing stdout and stderr separately.
CommandResult run_command(const std::string& command_line);
std::string shell_quote(const std::string& s);
// What `banyan generate` prints after `prompt` for a greedy run of the embedded models (without
// the final newline); throws std::runtime_error when it fails.
std::string generated_text(const std::string& prompt, int tokens, const std::string& mode);

using TensorMap = std::map<std::string, HostTensor>;

// n values drawn from N(0, scale²).
std::vector<float> random_normals(std::size_t n, std::mt19937& rng, float scale = 1.0f);

// The shape of the tiny-llama fixture: 2 layers, hidden 32, 4 heads (2 kv), vocab 128, context 256.
LlamaConfig tiny_llama_config();

// Hugging Face-named random weights for `config` (model/random_weights.hpp), all in memory.
TensorMap random_llama(const LlamaConfig& config, std::uint64_t seed);
void write_safetensors(const std::filesystem::path& file, const TensorMap& tensors, DType dtype);
void write_hf_config(const std::filesystem::path& file, const LlamaConfig& config);
// A Hugging Face folder (config.json + model.safetensors) of a random model.
void write_random_model(const std::filesystem::path& dir, const LlamaConfig& config, std::uint64_t seed,
                        DType dtype = DType::f32);

// Trains a small BPE SentencePiece model with byte fallback on generated English-like text.
void train_test_tokenizer(const std::filesystem::path& model_file, int vocab_size);

std::vector<char> read_bytes(const std::filesystem::path& file);
void write_bytes(const std::filesystem::path& file, const std::vector<char>& bytes);

}  // namespace banyan::test
