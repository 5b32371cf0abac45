#include "model/llama2c_reader.hpp"

#include <cstring>

#include "model/error.hpp"
#include "model/tensor_table.hpp"

namespace banyan {

std::unique_ptr<WeightSource> open_llama2c(const std::filesystem::path& path) {
  auto file = std::make_shared<const MappedFile>(path);
  const std::string where = path.string();
  std::int32_t h[7];
  std::memcpy(h, file->slice(0, sizeof h, "the llama2.c header").data(), sizeof h);
  if (std::uint32_t(h[0]) == 0x616b3432u)  // "ak42": llama2.c's versioned exports
    throw Error(where + ": llama2.c version-" + std::to_string(h[1]) +
                " export is not supported; export with the legacy format (version 0)");

  LlamaConfig c;
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.num_hidden_layers = h[2];
  c.num_attention_heads = h[3];
  c.num_key_value_heads = h[4];
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.tie_word_embeddings = h[5] > 0;
  c.max_position_embeddings = h[6];
  c.rms_norm_eps = 1e-5f;  // what llama2.c's run.c uses; the header has no field for it
  c.rope_theta = 10000.0f;
  for (int v : h)
    if (v == 0 || v < -(1 << 24) || v > (1 << 24))
      throw Error(where + ": not a llama2.c checkpoint (implausible header " + std::to_string(v) + ")");
  c.validate(where + " (llama2.c header)");

  auto table = std::make_unique<TensorTable>(path, c);
  const std::int64_t dim = c.hidden_size, hidden = c.intermediate_size, kv = c.kv_dim();
  const std::int64_t layers = c.num_hidden_layers, vocab = c.vocab_size, head = c.head_dim();
  std::uint64_t offset = sizeof h;

  // Each block holds one tensor per layer, stacked.
  auto stacked = [&](const char* suffix, std::vector<std::int64_t> shape, int rope_heads = 0) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    for (int i = 0; i < layers; ++i) {
      table->add(hf_names::layer(i, suffix), TensorEntry{file, DType::f32, shape, {}, offset, rope_heads});
      offset += std::uint64_t(n) * 4;
    }
  };
  auto single = [&](const std::string& name, std::vector<std::int64_t> shape) {
    table->add(name, TensorEntry{file, DType::f32, shape, {}, offset, 0});
    offset += std::uint64_t(shape[0] * (shape.size() > 1 ? shape[1] : 1)) * 4;
  };

  single(hf_names::embed_tokens(), {vocab, dim});
  stacked("input_layernorm.weight", {dim});
  stacked("self_attn.q_proj.weight", {dim, dim}, c.num_attention_heads);
  stacked("self_attn.k_proj.weight", {kv, dim}, c.num_key_value_heads);
  stacked("self_attn.v_proj.weight", {kv, dim});
  stacked("self_attn.o_proj.weight", {dim, dim});
  stacked("post_attention_layernorm.weight", {dim});
  stacked("mlp.gate_proj.weight", {hidden, dim});  // llama2.c's w1
  stacked("mlp.down_proj.weight", {dim, hidden});  // w2
  stacked("mlp.up_proj.weight", {hidden, dim});    // w3
  single(hf_names::final_norm(), {dim});
  offset += std::uint64_t(c.max_position_embeddings) * std::uint64_t(head) * 4;  // old RoPE tables
  if (!c.tie_word_embeddings) single(hf_names::lm_head(), {vocab, dim});
  if (offset != file->size())
    throw Error(where + ": file size " + std::to_string(file->size()) + " does not match the " +
                std::to_string(offset) + " bytes its llama2.c header describes");
  return table;
}

}  // namespace banyan
