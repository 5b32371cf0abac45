#include "model/widened_weights.hpp"

#include <cmath>

#include "model/error.hpp"

namespace banyan {

namespace {

// `rows` x `cols` of zeros with `block` ([r, c]) copied in at (row0, col0).
void place(HostTensor& out, const HostTensor& block, std::int64_t row0, std::int64_t col0) {
  const std::int64_t r = block.shape[0], c = block.shape.size() > 1 ? block.shape[1] : 1;
  const std::int64_t out_cols = out.shape.size() > 1 ? out.shape[1] : 1;
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t j = 0; j < c; ++j) out.data[std::size_t((row0 + i) * out_cols + col0 + j)] = block.data[std::size_t(i * c + j)];
}

HostTensor zeros(std::vector<std::int64_t> shape) {
  HostTensor t{std::move(shape), {}};
  t.data.assign(std::size_t(t.numel()), 0.0f);
  return t;
}

// Rows [row0, row0 + n) of a matrix.
HostTensor rows_of(const HostTensor& m, std::int64_t row0, std::int64_t n) {
  const std::int64_t cols = m.shape[1];
  return {{n, cols}, std::vector<float>(m.data.begin() + row0 * cols, m.data.begin() + (row0 + n) * cols)};
}

// Columns [col0, col0 + n) of a matrix.
HostTensor columns_of(const HostTensor& m, std::int64_t col0, std::int64_t n) {
  HostTensor out{{m.shape[0], n}, {}};
  for (std::int64_t i = 0; i < m.shape[0]; ++i)
    out.data.insert(out.data.end(), m.data.begin() + i * m.shape[1] + col0, m.data.begin() + i * m.shape[1] + col0 + n);
  return out;
}

// What the layer tensor `name` is ("self_attn.q_proj.weight"), and its layer; -1 for the others.
int layer_of(const std::string& name, std::string& suffix) {
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  const auto dot = name.find('.', prefix.size());
  suffix = name.substr(dot + 1);
  return std::stoi(name.substr(prefix.size(), dot - prefix.size()));
}

}  // namespace

WidenedWeights::WidenedWeights(std::unique_ptr<WeightSource> base, WideShape shape) : base_(std::move(base)) {
  const LlamaConfig& b = base_->config();
  config_ = b;
  config_.hidden_size = shape.hidden_size;
  config_.intermediate_size = shape.intermediate_size;
  config_.num_hidden_layers = shape.num_hidden_layers;
  config_.num_attention_heads = shape.num_attention_heads;
  config_.num_key_value_heads = shape.num_key_value_heads;
  // RMSNorm over the wider rows: mean' = mean * H / H', so eps' = eps * H / H' keeps it exact.
  config_.rms_norm_eps = b.rms_norm_eps * float(b.hidden_size) / float(shape.hidden_size);
  config_.validate("widened " + base_->origin().string());
  if (shape.hidden_size < b.hidden_size || shape.intermediate_size < b.intermediate_size ||
      shape.num_hidden_layers < b.num_hidden_layers || config_.head_dim() != b.head_dim() ||
      shape.num_key_value_heads < b.num_key_value_heads || config_.group_size() < b.group_size())
    throw Error("cannot widen " + base_->origin().string() + " (" + b.summary() + ") to " + config_.summary());
}

int WidenedWeights::query_head_at(int h) const {
  const int g = base_->config().group_size();
  return h / g * config_.group_size() + h % g;  // the same key/value head, the same place in its group
}

bool WidenedWeights::contains(const std::string& name) const {
  std::string suffix;
  const int layer = layer_of(name, suffix);
  if (layer >= base_->config().num_hidden_layers && layer < config_.num_hidden_layers)
    return base_->contains(hf_names::layer(0, suffix.c_str()));
  return base_->contains(name);
}

std::vector<std::string> WidenedWeights::tensor_names() const {
  std::vector<std::string> names = base_->tensor_names();
  for (const auto& n : base_->tensor_names()) {
    std::string suffix;
    if (layer_of(n, suffix) == 0)
      for (int l = base_->config().num_hidden_layers; l < config_.num_hidden_layers; ++l)
        names.push_back(hf_names::layer(l, suffix.c_str()));
  }
  return names;
}

HostTensor WidenedWeights::read(const std::string& name) const {
  const LlamaConfig& b = base_->config();
  const std::int64_t H = config_.hidden_size, I = config_.intermediate_size, hd = b.head_dim();
  const std::int64_t q_rows = std::int64_t(config_.num_attention_heads) * hd, kv_rows = config_.kv_dim();
  const float norm_scale = std::sqrt(float(b.hidden_size) / float(H));
  auto norm = [&](const HostTensor& w) {
    HostTensor out = zeros({H});
    for (std::size_t i = 0; i < w.data.size(); ++i) out.data[i] = w.data[i] * norm_scale;
    return out;
  };
  std::string suffix;
  const int layer = layer_of(name, suffix);
  if (layer < 0) {
    const HostTensor t = base_->read(name);
    if (name == hf_names::final_norm()) return norm(t);
    HostTensor out = zeros({t.shape[0], H});  // the embedding (or an untied classifier): zero columns
    place(out, t, 0, 0);
    return out;
  }
  if (layer >= b.num_hidden_layers) {  // an added layer: it adds nothing to the residual stream
    if (suffix.ends_with("norm.weight")) {
      HostTensor one = zeros({H});
      one.data.assign(one.data.size(), 1.0f);
      return one;
    }
    if (suffix == "self_attn.q_proj.weight") return zeros({q_rows, H});
    if (suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight") return zeros({kv_rows, H});
    if (suffix == "self_attn.o_proj.weight") return zeros({H, q_rows});
    if (suffix == "mlp.down_proj.weight") return zeros({H, I});
    return zeros({I, H});  // gate, up
  }
  const HostTensor t = base_->read(name);
  if (suffix.ends_with("norm.weight")) return norm(t);
  HostTensor out;
  if (suffix == "self_attn.q_proj.weight") {
    out = zeros({q_rows, H});
    for (int h = 0; h < b.num_attention_heads; ++h) place(out, rows_of(t, h * hd, hd), query_head_at(h) * hd, 0);
  } else if (suffix == "self_attn.o_proj.weight") {
    out = zeros({H, q_rows});
    for (int h = 0; h < b.num_attention_heads; ++h) place(out, columns_of(t, h * hd, hd), 0, query_head_at(h) * hd);
  } else if (suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight") {
    out = zeros({kv_rows, H});
    place(out, t, 0, 0);  // key/value head k stays head k
  } else if (suffix == "mlp.down_proj.weight") {
    out = zeros({H, I});
    place(out, t, 0, 0);
  } else {
    out = zeros({I, H});  // gate, up
    place(out, t, 0, 0);
  }
  return out;
}

}  // namespace banyan
