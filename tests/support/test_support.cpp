#include "tests/support/test_support.hpp"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sentencepiece_trainer.h>
#include <sstream>
#include <unistd.h>

#include "model/error.hpp"
#include "model/random_weights.hpp"

namespace banyan::test {

std::filesystem::path fixtures_dir() { return BANYAN_FIXTURES_DIR; }
std::filesystem::path source_dir() { return BANYAN_SOURCE_DIR; }
std::filesystem::path banyan_binary() { return BANYAN_BINARY; }

std::optional<std::filesystem::path> shared_dir() {
  const char* env = std::getenv("BANYAN_SHARED_DIR");
  std::filesystem::path p = env && *env ? env : BANYAN_SHARED_DIR_DEFAULT;
  if (std::filesystem::is_directory(p)) return p;
  return std::nullopt;
}

void skip_program(const std::string& why) {
  std::cout << "skipped: " << why << std::endl;
  std::exit(77);
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "banyan-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string generated_text(const std::string& prompt, int tokens, const std::string& mode) {
  const auto r = run_command(shell_quote(banyan_binary().string()) + " generate --prompt " + shell_quote(prompt) +
                             " --max-new-tokens " + std::to_string(tokens) + " --mode " + mode);
  if (r.exit_code != 0 || r.out.rfind(prompt, 0) != 0) throw std::runtime_error("banyan generate failed: " + r.err);
  return r.out.substr(prompt.size(), r.out.size() - prompt.size() - 1);
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CommandResult run_command(const std::string& command_line) {
  TempDir dir;
  const auto out = dir / "out", err = dir / "err";
  const std::string full = "(" + command_line + ") >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string());
  const int status = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

std::vector<float> random_normals(std::size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

LlamaConfig tiny_llama_config() {
  LlamaConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 96;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.num_hidden_layers = 2;
  c.vocab_size = 128;
  c.max_position_embeddings = 256;
  return c;
}

TensorMap random_llama(const LlamaConfig& c, std::uint64_t seed) {
  const RandomWeights source(c, seed);
  TensorMap m;
  for (const auto& name : source.tensor_names()) m[name] = source.read(name);
  return m;
}

void write_safetensors(const std::filesystem::path& file, const TensorMap& tensors, DType dtype) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  const std::size_t esize = dtype_size(dtype);
  for (const auto& [name, t] : tensors) {
    const std::uint64_t bytes = t.data.size() * esize;
    header[name] = {{"dtype", dtype == DType::f32 ? "F32" : dtype == DType::f16 ? "F16" : "BF16"},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(file, std::ios::binary);
  const std::uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << h;
  std::vector<std::uint16_t> half;
  for (const auto& [name, t] : tensors) {
    if (dtype == DType::f32) {
      out.write(reinterpret_cast<const char*>(t.data.data()), std::streamsize(t.data.size() * 4));
      continue;
    }
    half.resize(t.data.size());
    for (std::size_t i = 0; i < half.size(); ++i)
      half[i] = dtype == DType::f16 ? f32_to_f16(t.data[i]) : f32_to_bf16(t.data[i]);
    out.write(reinterpret_cast<const char*>(half.data()), std::streamsize(half.size() * 2));
  }
}

void write_hf_config(const std::filesystem::path& file, const LlamaConfig& c) { std::ofstream(file) << hf_config_json(c); }

void write_random_model(const std::filesystem::path& dir, const LlamaConfig& config, std::uint64_t seed, DType dtype) {
  std::filesystem::create_directories(dir);
  write_hf_config(dir / "config.json", config);
  write_safetensors(dir / "model.safetensors", random_llama(config, seed), dtype);
}

void train_test_tokenizer(const std::filesystem::path& model_file, int vocab_size) {
  TempDir dir;
  const auto text = dir / "text.txt";
  {
    // Deterministic English-like sentences: enough repeated words for BPE merges to form.
    const char* words[] = {"the", "little", "cat", "dog", "saw", "a", "big", "red", "ball", "and", "ran",
                           "to", "park", "happy", "girl", "boy", "named", "Tim", "Lily", "played", "with",
                           "tree", "sun", "was", "very", "they", "friends", "home", "said", "look"};
    std::mt19937 rng(7);
    std::ofstream out(text);
    for (int line = 0; line < 2000; ++line) {
      const int n = 4 + int(rng() % 10);
      for (int w = 0; w < n; ++w) out << (w ? " " : "") << words[rng() % std::size(words)];
      out << (line % 3 == 0 ? "!" : ".") << "\n";
    }
  }
  const auto prefix = model_file.parent_path() / model_file.stem();
  std::ostringstream args;
  args << "--input=" << text.string() << " --model_prefix=" << prefix.string() << " --vocab_size=" << vocab_size
       << " --model_type=bpe --byte_fallback=true --character_coverage=1.0 --bos_id=1 --eos_id=2 --unk_id=0"
       << " --pad_id=-1 --normalization_rule_name=identity --remove_extra_whitespaces=false"
       << " --num_threads=1 --minloglevel=2";
  const auto status = sentencepiece::SentencePieceTrainer::Train(args.str());
  if (!status.ok()) throw std::runtime_error("training the test tokenizer failed: " + status.ToString());
  std::filesystem::remove(prefix.string() + ".vocab");
  if (prefix.string() + ".model" != model_file.string())
    std::filesystem::rename(prefix.string() + ".model", model_file);
}

std::vector<char> read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::filesystem::path& file, const std::vector<char>& bytes) {
  std::ofstream(file, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace banyan::test
