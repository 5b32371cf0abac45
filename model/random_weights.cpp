#include "model/random_weights.hpp"

#include <cmath>
#include <cstring>

#include "model/error.hpp"
#include "model/sampler.hpp"

namespace banyan {

RandomWeights::RandomWeights(LlamaConfig config, std::uint64_t seed)
    : config_(config), seed_(seed), origin_("random(seed " + std::to_string(seed) + ")") {
  config_.validate(origin_.string());
}

std::vector<std::string> RandomWeights::tensor_names() const {
  std::vector<std::string> names = {hf_names::embed_tokens(), hf_names::final_norm()};
  for (int i = 0; i < config_.num_hidden_layers; ++i)
    for (const char* s : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                          "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      names.push_back(hf_names::layer(i, s));
  if (!config_.tie_word_embeddings) names.push_back(hf_names::lm_head());
  return names;
}

bool RandomWeights::contains(const std::string& name) const { return !shape_of(name).empty(); }

std::vector<std::int64_t> RandomWeights::shape_of(const std::string& name) const {
  const std::int64_t dim = config_.hidden_size, kv = config_.kv_dim(), inter = config_.intermediate_size;
  if (name == hf_names::embed_tokens()) return {config_.vocab_size, dim};
  if (name == hf_names::lm_head()) return config_.tie_word_embeddings ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{config_.vocab_size, dim};
  if (name == hf_names::final_norm()) return {dim};
  const auto ends = [&](const char* s) { return name.size() > std::strlen(s) && name.ends_with(s); };
  if (name.rfind("model.layers.", 0) != 0) return {};
  if (ends("layernorm.weight")) return {dim};
  if (ends("q_proj.weight") || ends("o_proj.weight")) return {dim, dim};
  if (ends("k_proj.weight") || ends("v_proj.weight")) return {kv, dim};
  if (ends("gate_proj.weight") || ends("up_proj.weight")) return {inter, dim};
  if (ends("down_proj.weight")) return {dim, inter};
  return {};
}

HostTensor RandomWeights::read(const std::string& name) const {
  HostTensor t;
  t.shape = shape_of(name);
  if (t.shape.empty()) throw Error(origin_.string() + ": missing tensor '" + name + "'");
  t.data.resize(std::size_t(t.numel()));
  std::uint64_t h = seed_;
  for (char c : name) h = (h ^ std::uint8_t(c)) * 0x100000001b3ull;  // FNV-1a: one stream per tensor
  Rng rng(h);
  const bool norm = t.shape.size() == 1;
  const bool embedding = name == hf_names::embed_tokens();
  const float scale = norm ? 0.1f : embedding ? 1.0f : 1.0f / std::sqrt(float(t.shape[1]));
  // Box-Muller pairs: fast enough for a billion values, exactly reproducible.
  for (std::size_t i = 0; i < t.data.size(); i += 2) {
    const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    t.data[i] = float(r * std::cos(6.283185307179586 * u2)) * scale + (norm ? 1.0f : 0.0f);
    if (i + 1 < t.data.size()) t.data[i + 1] = float(r * std::sin(6.283185307179586 * u2)) * scale + (norm ? 1.0f : 0.0f);
  }
  return t;
}

namespace {
LlamaConfig shape(int dim, int inter, int layers, int heads, int kv_heads) {
  LlamaConfig c;
  c.hidden_size = dim;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.vocab_size = 32000;
  c.max_position_embeddings = 2048;
  return c;
}
}  // namespace

LlamaConfig llama_68m_shape() { return shape(768, 3072, 2, 12, 12); }
LlamaConfig llama_160m_shape() { return shape(768, 3072, 12, 12, 12); }
LlamaConfig tinyllama_1b_shape() { return shape(2048, 5632, 22, 32, 4); }

}  // namespace banyan
