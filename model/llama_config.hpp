#pragma once
// The shape and constants of a LLaMA-family model, as Hugging Face's config.json names them.
#include <filesystem>
#include <string>

namespace banyan {

struct LlamaConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int num_hidden_layers = 0;
  int vocab_size = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  int bos_token_id = 1;
  int eos_token_id = 2;

  int head_dim() const { return hidden_size / num_attention_heads; }
  int kv_dim() const { return head_dim() * num_key_value_heads; }
  // Query heads that share one key/value head (grouped-query attention).
  int group_size() const { return num_attention_heads / num_key_value_heads; }

  // Throws Error, prefixed with `where`, when the numbers cannot describe a LLaMA model.
  void validate(const std::string& where) const;
  std::string summary() const;
};

// Reads a Hugging Face config.json; rejects other architectures with a message naming the file.
LlamaConfig read_hf_config(const std::filesystem::path& config_json);
// The same from JSON text; `where` prefixes every error.
LlamaConfig parse_hf_config(const std::string& json_text, const std::string& where);
// The config as Hugging Face config.json text.
std::string hf_config_json(const LlamaConfig& config);

}  // namespace banyan
