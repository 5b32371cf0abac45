#include "model/llama_config.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/error.hpp"

namespace banyan {

void LlamaConfig::validate(const std::string& where) const {
  auto fail = [&](const std::string& what) { throw Error(where + ": " + what); };
  auto positive = [&](const char* key, int value) {
    if (value <= 0) fail(std::string(key) + " must be positive, got " + std::to_string(value));
  };
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("num_hidden_layers", num_hidden_layers);
  positive("vocab_size", vocab_size);
  positive("max_position_embeddings", max_position_embeddings);
  if (hidden_size % num_attention_heads != 0)
    fail("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
         std::to_string(num_attention_heads));
  if (head_dim() % 2 != 0) fail("head dimension " + std::to_string(head_dim()) + " is odd; RoPE needs pairs");
  if (num_attention_heads % num_key_value_heads != 0)
    fail("num_attention_heads " + std::to_string(num_attention_heads) +
         " is not a multiple of num_key_value_heads " + std::to_string(num_key_value_heads));
  if (!(rms_norm_eps > 0)) fail("rms_norm_eps must be positive");
  if (!(rope_theta > 0)) fail("rope_theta must be positive");
  if (bos_token_id >= vocab_size || eos_token_id >= vocab_size)
    fail("bos/eos token id outside the vocabulary of " + std::to_string(vocab_size));
}

std::string LlamaConfig::summary() const {
  std::ostringstream s;
  s << "hidden " << hidden_size << ", intermediate " << intermediate_size << ", " << num_hidden_layers
    << " layers, " << num_attention_heads << " heads (" << num_key_value_heads << " kv), vocab "
    << vocab_size;
  return s.str();
}

namespace {

using nlohmann::json;

template <class T>
void read_key(const json& j, const char* key, T& out, const std::string& where, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw Error(where + ": missing key '" + key + "'");
    return;
  }
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw Error(where + ": key '" + key + "' has the wrong type (" + it->type_name() + ")");
  }
}

// Llama 3 style configs give a list of end-of-sequence ids; the first one is the tokenizer's.
void read_token_id(const json& j, const char* key, int& out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
    out = (*it)[0].get<int>();
  } else if (it->is_number_integer()) {
    out = it->get<int>();
  } else {
    throw Error(where + ": key '" + key + "' must be an integer or a list of integers");
  }
}

}  // namespace

LlamaConfig read_hf_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string() + ": cannot open (a Hugging Face model folder needs config.json)");
  return parse_hf_config(std::string(std::istreambuf_iterator<char>(in), {}), path.string());
}

std::string hf_config_json(const LlamaConfig& c) {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_act", "silu"},
              {"hidden_size", c.hidden_size},
              {"intermediate_size", c.intermediate_size},
              {"num_attention_heads", c.num_attention_heads},
              {"num_key_value_heads", c.num_key_value_heads},
              {"num_hidden_layers", c.num_hidden_layers},
              {"vocab_size", c.vocab_size},
              {"rms_norm_eps", c.rms_norm_eps},
              {"rope_theta", c.rope_theta},
              {"max_position_embeddings", c.max_position_embeddings},
              {"tie_word_embeddings", c.tie_word_embeddings},
              {"bos_token_id", c.bos_token_id},
              {"eos_token_id", c.eos_token_id}}
      .dump(2);
}

LlamaConfig parse_hf_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object");

  std::string model_type;
  read_key(j, "model_type", model_type, where, false);
  if (!model_type.empty() && model_type != "llama")
    throw Error(where + ": model_type '" + model_type + "' is not a LLaMA model (expected 'llama')");
  if (auto a = j.find("architectures"); a != j.end() && a->is_array() && !a->empty()) {
    const std::string arch = (*a)[0].is_string() ? (*a)[0].get<std::string>() : "";
    if (arch.find("Llama") == std::string::npos)
      throw Error(where + ": architecture '" + arch + "' is not a LLaMA model (expected LlamaForCausalLM)");
  }
  if (auto r = j.find("rope_scaling"); r != j.end() && !r->is_null())
    throw Error(where + ": rope_scaling is not supported yet");
  if (auto act = j.find("hidden_act"); act != j.end() && act->is_string() && *act != "silu")
    throw Error(where + ": hidden_act '" + act->get<std::string>() + "' is not supported (LLaMA uses silu)");

  LlamaConfig c;
  read_key(j, "hidden_size", c.hidden_size, where, true);
  read_key(j, "intermediate_size", c.intermediate_size, where, true);
  read_key(j, "num_attention_heads", c.num_attention_heads, where, true);
  c.num_key_value_heads = c.num_attention_heads;
  read_key(j, "num_key_value_heads", c.num_key_value_heads, where, false);
  read_key(j, "num_hidden_layers", c.num_hidden_layers, where, true);
  read_key(j, "vocab_size", c.vocab_size, where, true);
  read_key(j, "rms_norm_eps", c.rms_norm_eps, where, false);
  read_key(j, "rope_theta", c.rope_theta, where, false);
  read_key(j, "max_position_embeddings", c.max_position_embeddings, where, false);
  read_key(j, "tie_word_embeddings", c.tie_word_embeddings, where, false);
  read_token_id(j, "bos_token_id", c.bos_token_id, where);
  read_token_id(j, "eos_token_id", c.eos_token_id, where);
  c.validate(where);
  return c;
}

}  // namespace banyan
