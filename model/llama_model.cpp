#include "model/llama_model.hpp"

#include <algorithm>
#include <cmath>
#include <new>
#include <optional>

#include "model/error.hpp"
#include "model/tensor_shard_weights.hpp"

namespace banyan {

namespace {

class WeightLoader {
 public:
  WeightLoader(const WeightSource& source, Backend& backend, const LlamaModel::Progress& progress, int total)
      : source_(source), backend_(backend), progress_(progress), total_(total) {}

  // With `unit`, the weight is paged (offloading): its bytes must lie in a mapped file, and
  // their range joins the unit.
  std::unique_ptr<DeviceWeight> load(const std::string& name, std::vector<std::int64_t> shape, const ModelOptions& options,
                                     PagedUnit* unit = nullptr) {
    require(name);
    std::optional<WeightData> data = source_.read_encoded(name);
    std::vector<std::int64_t> stored_shape;
    if (data) {
      stored_shape = shape.size() == 1 && data->rows == 1 ? std::vector<std::int64_t>{data->cols}
                                                          : std::vector<std::int64_t>{data->rows, data->cols};
    } else {
      HostTensor t = source_.read(name);
      stored_shape = t.shape;
      if (stored_shape == shape) data = encode(std::move(t), weight_format_for(name, source_.config(), options));
    }
    if (stored_shape != shape) throw shape_mismatch(source_, name, stored_shape, shape);
    if (!unit) return upload(std::move(*data));
    if (!data->mapped)
      throw Error(source_.origin().string() + " cannot be offloaded: offloading streams weights from a `banyan convert` "
                  "file (write one with `banyan convert`)");
    unit->ranges.push_back(data->bytes);
    auto w = upload(std::move(*data), true);
    unit->weights.push_back(w.get());
    return w;
  }

  // `shard`'s band of a matrix split over tensor shards (shard_band), loaded resident.
  std::unique_ptr<DeviceWeight> load_band(const std::string& name, std::vector<std::int64_t> shape,
                                          const ModelOptions& options, ShardSplit split) {
    return upload(shard_band(source_, name, split, options.shard, options, std::move(shape)));
  }

  std::size_t bytes() const { return bytes_; }

 private:
  void require(const std::string& name) const {
    if (!source_.contains(name)) throw Error(source_.origin().string() + ": missing tensor '" + name + "'");
  }
  std::unique_ptr<DeviceWeight> upload(WeightData data, bool offloaded = false) {
    auto w = offloaded ? backend_.upload_offloaded(std::move(data)) : backend_.upload(std::move(data));
    bytes_ += w->bytes;
    if (progress_) progress_(++done_, total_);
    return w;
  }

  const WeightSource& source_;
  Backend& backend_;
  const LlamaModel::Progress& progress_;
  int total_, done_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace

WeightFormat weight_format_for(const std::string& name, const LlamaConfig& config, const ModelOptions& options) {
  const bool is_embedding = name == hf_names::embed_tokens();
  const bool is_classifier = name == hf_names::lm_head();
  if (name.ends_with("norm.weight")) return WeightFormat::f32;
  WeightFormat f = options.linear;
  if (is_embedding && !is_float_format(f)) f = WeightFormat::f16;
  if (is_classifier && f == WeightFormat::q4) f = WeightFormat::q8;
  const int width = name.ends_with("down_proj.weight") ? config.intermediate_size : config.hidden_size;
  return format_fits(f, width) ? f : WeightFormat::f16;
}

std::optional<WeightData> EncodedWeights::read_encoded(const std::string& name) const {
  auto it = cache_.find(name);
  if (it == cache_.end()) {
    if (auto stored = base_.read_encoded(name)) return stored;
    it = cache_.emplace(name, encode(base_.read(name), weight_format_for(name, base_.config(), options_))).first;
  }
  return it->second;
}

std::size_t LlamaModel::decode_bytes() const {
  const bool embedding_is_read_whole = config_.tie_word_embeddings && is_last_stage();
  return !embed_tokens_ || embedding_is_read_whole ? weight_bytes_ : weight_bytes_ - embed_tokens_->bytes;
}

namespace {

LayerRange checked_range(const LayerRange& r, const LlamaConfig& c) {
  const LayerRange out{r.first, r.end < 0 ? c.num_hidden_layers : r.end};
  if (out.first < 0 || out.first >= out.end || out.end > c.num_hidden_layers)
    throw Error("layers [" + std::to_string(r.first) + ", " + std::to_string(r.end) + ") are not a range within the " +
                std::to_string(c.num_hidden_layers) + " layers of the model");
  return out;
}

}  // namespace

std::vector<LayerRange> split_layers(int layers, int stages) {
  if (stages < 1 || stages > layers)
    throw Error("cannot split " + std::to_string(layers) + " layers into " + std::to_string(stages) + " stages");
  std::vector<LayerRange> out;
  for (int s = 0; s < stages; ++s) out.push_back({layers * s / stages, layers * (s + 1) / stages});
  return out;
}

std::string layers_text(LayerRange range) {
  return "layers " + std::to_string(range.first) + "-" + std::to_string(range.end - 1);
}

void check_tensor_shard(const LlamaConfig& c, TensorShard s) {
  if (s.degree < 1 || s.rank < 0 || s.rank >= s.degree)
    throw Error("tensor shard " + std::to_string(s.rank) + " of " + std::to_string(s.degree) + " does not exist");
  for (const auto& [count, what] : {std::pair{c.num_attention_heads, "attention heads"},
                                    std::pair{c.num_key_value_heads, "key/value heads"},
                                    std::pair{c.intermediate_size, "MLP columns"}})
    if (count % s.degree != 0)
      throw Error("cannot split the model's " + std::to_string(count) + " " + what + " into " +
                  std::to_string(s.degree) + " tensor shards");
}

LlamaModel::LlamaModel(const WeightSource& weights, Backend& backend, const ModelOptions& options,
                       const Progress& progress, LayerRange layers)
    : config_(weights.config()), options_(options), backend_(backend) {
  const auto& c = config_;
  const LayerRange range = checked_range(layers, c);
  const TensorShard& shard = options.shard;
  check_tensor_shard(c, shard);
  first_layer_ = range.first;
  const bool first = range.first == 0, last = range.end == c.num_hidden_layers;
  const bool classifier = last && shard.rank == 0;  // the other shards' logits would be the same
  const bool needs_embedding = first || (classifier && c.tie_word_embeddings);  // a tied classifier is the embedding
  const std::int64_t dim = c.hidden_size, kv = c.kv_dim(), inter = c.intermediate_size;
  q_width_ = dim / shard.degree;
  kv_width_ = kv / shard.degree;
  mlp_width_ = inter / shard.degree;
  const int tensors = 9 * (range.end - range.first) + (needs_embedding ? 1 : 0) + (classifier ? 1 : 0) +
                      (classifier && !c.tie_word_embeddings ? 1 : 0);
  WeightLoader loader(weights, backend, progress, tensors);
  const int layer_count = range.end - range.first;
  const bool paging = options.offload;
  // A file of one shard's weights (`banyan convert --tensor-shards`) holds its bands as they load.
  const bool cut = weights.tensor_shard().degree > 1;
  if (cut && weights.tensor_shard() != shard)
    throw Error(weights.origin().string() + " holds tensor " + shard_text(weights.tensor_shard()) +
                " of the model; it cannot be loaded as " + (shard.degree > 1 ? shard_text(shard) : "the whole model"));
  // An offloaded weight streams from its range of the file: a shard's band of a column-split
  // matrix is not one range of the whole model's file.
  if (paging && shard.degree > 1 && !cut) {
    const std::string from = weights.origin().string();
    const bool folder = std::filesystem::is_directory(weights.origin());  // not converted yet
    throw Error("offloading tensor " + shard_text(shard) + " of " + from + " needs each shard's weights in a file of its " +
                "own: write them with `banyan convert --model " + from + " --tensor-shards " + std::to_string(shard.degree) +
                " --out " + (folder ? "FILE`, then load FILE" : from + "` (beside it: " +
                shard_file(weights.origin(), shard).filename().string() + ", ...)"));
  }
  std::vector<PagedUnit> units(static_cast<std::size_t>(layer_count));
  if (last) {
    classifier_unit_ = int(units.size());
    units.emplace_back();
  }
  if (first && !(last && c.tie_word_embeddings)) {
    embedding_unit_ = int(units.size());
    units.push_back({.on_demand = true});
  }
  auto unit = [&](int u) { return paging && u >= 0 ? &units[std::size_t(u)] : nullptr; };

  // The vocabulary-sized tensors come first: their f32 forms are the largest temporaries, and
  // peak memory stays lowest while little else is loaded.
  if (needs_embedding)
    embed_tokens_ = loader.load(hf_names::embed_tokens(), {c.vocab_size, dim}, options,
                                unit(c.tie_word_embeddings && last ? classifier_unit_ : embedding_unit_));
  if (classifier && !c.tie_word_embeddings)
    lm_head_ = loader.load(hf_names::lm_head(), {c.vocab_size, dim}, options, unit(classifier_unit_));
  if (classifier) norm_ = loader.load(hf_names::final_norm(), {dim}, options);
  layers_.resize(std::size_t(layer_count));
  for (int i = range.first; i < range.end; ++i) {
    auto& l = layers_[std::size_t(i - range.first)];
    auto name = [i](const char* suffix) { return hf_names::layer(i, suffix); };
    PagedUnit* u = unit(i - range.first);  // the norms are too small to page
    // A matrix whole (one shard), or this shard's band of it: as its own file holds it, or cut.
    auto matrix = [&](const char* suffix, std::vector<std::int64_t> shape) {
      if (shard.degree == 1) return loader.load(name(suffix), shape, options, u);
      const ShardSplit split = *shard_split(name(suffix));
      if (cut) return loader.load(name(suffix), band_shape(shape, split, shard), options, u);
      return loader.load_band(name(suffix), shape, options, split);
    };
    l.input_layernorm = loader.load(name("input_layernorm.weight"), {dim}, options);
    l.self_attn.q_proj = matrix("self_attn.q_proj.weight", {dim, dim});
    l.self_attn.k_proj = matrix("self_attn.k_proj.weight", {kv, dim});
    l.self_attn.v_proj = matrix("self_attn.v_proj.weight", {kv, dim});
    l.self_attn.o_proj = matrix("self_attn.o_proj.weight", {dim, dim});
    l.post_attention_layernorm = loader.load(name("post_attention_layernorm.weight"), {dim}, options);
    l.mlp.gate_proj = matrix("mlp.gate_proj.weight", {inter, dim});
    l.mlp.up_proj = matrix("mlp.up_proj.weight", {inter, dim});
    l.mlp.down_proj = matrix("mlp.down_proj.weight", {dim, inter});
  }
  weight_bytes_ = loader.bytes();
  if (paging) units_ = std::move(units);
}

std::shared_ptr<WeightPaging> page_models(const std::vector<LlamaModel*>& models, const PagingBudget& budget) {
  std::vector<PagedUnit> units;
  for (const LlamaModel* m : models) {
    if (!m->options().offload || m->paged_) throw Error("page_models: a model loaded without offloading, or paged already");
    if (&m->backend() != &models.front()->backend()) throw Error("page_models: models on different backends");
    units.insert(units.end(), m->units_.begin(), m->units_.end());
  }
  const OffloadPlan plan = plan_offload(units, budget.budget, budget.reserve);
  auto paged = models.front()->backend().page(std::move(units), plan, budget.evict);
  int first = 0;
  for (LlamaModel* m : models) {
    m->paged_ = paged;
    m->first_unit_ = first;
    first += int(m->units_.size());
    m->units_.clear();
  }
  return paged;
}

std::unique_ptr<KvCache> LlamaModel::create_kv_cache(const KvLayout& l) const {
  if (l.slots <= 0 || l.capacity <= 0 || l.paging.block_rows < 0 || (l.paging.on() && l.paging.blocks <= 0))
    throw Error("KV cache: " + std::to_string(l.slots) + " slots of " + std::to_string(l.capacity) + " rows" +
                (l.paging.on() ? " in " + std::to_string(l.paging.blocks) + " blocks of " + std::to_string(l.paging.block_rows)
                               : "") +
                " is not a cache");
  const KvCacheSpec spec{int(layers_.size()), l.slots, l.capacity, config_.num_key_value_heads / options_.shard.degree,
                         config_.head_dim(), options_.kv_cache, l.paging};
  try {
    return backend_.create_kv_cache(spec);
  } catch (const std::bad_alloc&) {
    const double bytes = 2.0 * double(spec.layers) * double(spec.rows()) * spec.kv_heads * spec.head_dim * double(dtype_size(spec.dtype));
    throw Error("KV cache: " + std::to_string(spec.rows()) + " tokens of " + std::to_string(spec.layers) + " layers take " +
                std::to_string(std::llround(bytes / double(1 << 20))) + " MiB, more than can be allocated (fewer tokens: " +
                "--kv-cache-tokens, --max-requests-per-batch, --max-sequence-length)");
  }
}

void LlamaModel::reserve(std::int64_t tokens) {
  if (tokens <= ws_.tokens) return;
  const std::int64_t dim = config_.hidden_size;
  ws_.x = backend_.allocate(tokens * dim);
  ws_.h = backend_.allocate(tokens * dim);
  ws_.q = backend_.allocate(tokens * q_width_);
  ws_.k = backend_.allocate(tokens * kv_width_);
  ws_.v = backend_.allocate(tokens * kv_width_);
  ws_.attn = backend_.allocate(tokens * dim);  // also the classifier's normed input
  ws_.gate = backend_.allocate(tokens * mlp_width_);
  ws_.up = backend_.allocate(tokens * mlp_width_);
  if (norm_) ws_.logits = backend_.allocate(tokens * config_.vocab_size);
  ws_.tokens = tokens;
}

void LlamaModel::run_layer(int index, const ForwardBatch& batch, KvCache& kv, Tensor x) {
  const auto& layer = layers_[std::size_t(index)];
  const std::int64_t n = x.rows, dim = config_.hidden_size;
  Tensor h = ws_.h->view(n, dim), q = ws_.q->view(n, q_width_), k = ws_.k->view(n, kv_width_),
         v = ws_.v->view(n, kv_width_), attn = ws_.attn->view(n, q_width_);

  backend_.rms_norm(x, *layer.input_layernorm, config_.rms_norm_eps, h);
  const DeviceWeight* qkv[] = {layer.self_attn.q_proj.get(), layer.self_attn.k_proj.get(), layer.self_attn.v_proj.get()};
  const Tensor qkv_out[] = {q, k, v};
  backend_.matmuls(h, qkv, qkv_out);
  backend_.rope(q, k, batch, config_.head_dim(), config_.rope_theta);
  backend_.attention(index, q, k, v, batch, kv, attn);
  backend_.matmul(attn, *layer.self_attn.o_proj, h);
  sum_over_shards(h);
  backend_.add(x, h);

  Tensor gate = ws_.gate->view(n, mlp_width_), up = ws_.up->view(n, mlp_width_);
  backend_.rms_norm(x, *layer.post_attention_layernorm, config_.rms_norm_eps, h);
  const DeviceWeight* gate_up[] = {layer.mlp.gate_proj.get(), layer.mlp.up_proj.get()};
  const Tensor gate_up_out[] = {gate, up};
  backend_.matmuls(h, gate_up, gate_up_out);
  backend_.silu_mul(gate, up);
  backend_.matmul(gate, *layer.mlp.down_proj, h);
  sum_over_shards(h);
  backend_.add(x, h);
}

void LlamaModel::sum_over_shards(Tensor partial) {
  if (options_.shard.degree == 1) return;
  collective_->all_reduce_tensor(backend_, partial);
}

namespace {

// A paged cache needs a block table, a fixed one none, and every block must be the cache's.
void check_blocks(const KvCacheSpec& kv, std::span<const std::int32_t> blocks, const std::string& where) {
  if (kv.paged() == blocks.empty())
    throw Error(where + (kv.paged() ? ": the KV cache is paged but no block table came"
                                    : ": a block table came for a KV cache that is not paged"));
  for (auto block : blocks)
    if (block < 0 || block >= kv.paging.blocks)
      throw Error(where + ": KV block " + std::to_string(block) + " out of range (" + std::to_string(kv.paging.blocks) +
                  " blocks)");
}

// The rows of a sequence whose block table is `blocks`: its capacity, or fewer if (paged) its
// table covers fewer.
int sequence_rows(const KvCacheSpec& kv, std::int32_t slot, std::span<const std::int32_t> blocks) {
  return std::min(kv.capacity, kv_row_map(kv, slot, blocks).covered());
}

// Backends index memory with these numbers, so they are checked once here.
void check_batch(const ForwardBatch& b, const KvCacheSpec& kv, int vocab) {
  const std::size_t n = b.size();
  if (n == 0) throw Error("forward: empty batch");
  if (b.positions.size() != n || b.slots.size() != n || b.cache_rows.size() != n || b.visible.size() != n ||
      b.tree_masks.size() != n)
    throw Error("forward: batch fields have different lengths");
  check_blocks(kv, b.kv_blocks, "forward");
  if (kv.paged() && (b.kv_block_begin.size() != n || b.kv_block_end.size() != n))
    throw Error("forward: the batch's block tables are not one per token");
  for (std::size_t i = 0; i < n; ++i) {
    auto bad = [&](const std::string& what) {
      throw Error("forward: token " + std::to_string(i) + " of the batch: " + what);
    };
    if (b.tokens[i] < 0 || b.tokens[i] >= vocab)
      bad("id " + std::to_string(b.tokens[i]) + " outside the vocabulary of " + std::to_string(vocab));
    if (b.slots[i] < 0 || b.slots[i] >= kv.slots) bad("slot " + std::to_string(b.slots[i]) + " out of range");
    if (kv.paged() && (b.kv_block_begin[i] < 0 || b.kv_block_begin[i] > b.kv_block_end[i] ||
                       std::size_t(b.kv_block_end[i]) > b.kv_blocks.size()))
      bad("block table out of range");
    const int rows = sequence_rows(kv, b.slots[i], b.block_table(i));
    if (b.cache_rows[i] < 0 || b.cache_rows[i] >= rows)
      bad("cache row " + std::to_string(b.cache_rows[i]) + " beyond the " + std::to_string(rows) + " rows of its KV slot");
    const int highest_bit = b.tree_masks[i] ? 63 - __builtin_clzll(b.tree_masks[i]) : -1;
    if (b.visible[i] < 0 || b.visible[i] + highest_bit + 1 > rows) bad("attends beyond the rows of its KV slot");
    if (b.positions[i] < 0) bad("negative position");
  }
  for (auto r : b.logit_rows)
    if (r < 0 || std::size_t(r) >= n) throw Error("forward: logit row " + std::to_string(r) + " out of range");
  if (b.summary_k < 0 || b.summary_k > std::min(kMaxSummaryTokens, vocab))
    throw Error("forward: logit summaries of " + std::to_string(b.summary_k) + " tokens (at most " +
                std::to_string(std::min(kMaxSummaryTokens, vocab)) + ")");
  if (!b.nucleus_temperature.empty() &&
      (b.summary_k == 0 || b.nucleus_temperature.size() != b.logit_rows.size() || b.nucleus_top_p.size() != b.logit_rows.size()))
    throw Error("forward: nucleus sampling for " + std::to_string(b.nucleus_temperature.size()) + " of " +
                std::to_string(b.logit_rows.size()) + " logit rows" + (b.summary_k == 0 ? " that are not summarised" : ""));
  for (std::size_t i = 0; i < b.nucleus_temperature.size(); ++i)
    if (!(b.nucleus_temperature[i] >= 0) || !(b.nucleus_top_p[i] > 0 && b.nucleus_top_p[i] <= 1) ||
        (b.nucleus_temperature[i] > 0 && b.nucleus_top_p[i] == 1))
      throw Error("forward: nucleus sampling at temperature " + std::to_string(b.nucleus_temperature[i]) + ", top_p " +
                  std::to_string(b.nucleus_top_p[i]));
}

}  // namespace

void LlamaModel::move_kv_rows(KvCache& kv, int slot, std::span<const std::pair<int, int>> from_to,
                              std::span<const std::int32_t> blocks) {
  const KvCacheSpec& spec = kv.spec();
  if (slot < 0 || slot >= spec.slots)
    throw Error("KV row move: slot " + std::to_string(slot) + " out of range (" + std::to_string(spec.slots) + " slots)");
  check_blocks(spec, blocks, "KV row move");
  const KvRowMap map = kv_row_map(spec, slot, blocks);
  const int rows = sequence_rows(spec, slot, blocks);
  std::vector<std::pair<std::int64_t, std::int64_t>> cache_rows;
  for (const auto& [from, to] : from_to) {
    if (from < 0 || to < 0 || from >= rows || to >= rows)
      throw Error("KV row move " + std::to_string(from) + " -> " + std::to_string(to) + " beyond the " + std::to_string(rows) +
                  " rows of slot " + std::to_string(slot));
    cache_rows.emplace_back(map.row(from), map.row(to));
  }
  backend_.copy_kv_rows(kv, cache_rows);
}

void LlamaModel::forward(const ForwardBatch& batch, KvCache& kv, std::vector<float>& logits) {
  if (!is_first_stage() || !is_last_stage()) throw Error("forward: this model holds one pipeline stage only");
  forward_stage(batch, kv, {}, logits);
}

void LlamaModel::forward_stage(const ForwardBatch& batch, KvCache& kv, std::span<const float> input,
                               std::vector<float>& output) {
  check_batch(batch, kv.spec(), config_.vocab_size);
  if (options_.shard.degree > 1 && !collective_)
    throw Error("forward: tensor shard " + std::to_string(options_.shard.rank) + " has no collective to sum through");
  const auto n = std::int64_t(batch.size());
  reserve(n);
  const std::int64_t dim = config_.hidden_size;
  Tensor x = ws_.x->view(n, dim);
  if (is_first_stage()) {
    backend_.embed(*embed_tokens_, batch, x);
    if (embedding_unit_ >= 0) release(embedding_unit_);  // only its rows were read
  } else {
    if (input.size() != std::size_t(n * dim))
      throw Error("forward: stage input has " + std::to_string(input.size()) + " values, expected " +
                  std::to_string(n * dim));
    backend_.write(input, x);
  }
  for (int i = 0; i < int(layers_.size()); ++i) {
    acquire(i);
    run_layer(i, batch, kv, x);
    release(i);
  }
  if (!is_last_stage()) {
    output.resize(std::size_t(n * dim));
    backend_.read(x, output);
    return;
  }

  if (!norm_) {  // a tensor shard but the first: shard 0 writes the logits
    output.clear();
    return;
  }
  // Only the wanted rows go through the final norm and the (large) classifier.
  const auto m = std::int64_t(batch.logit_rows.size());
  const int k = batch.summary_k;
  output.resize(std::size_t(m * (k > 0 ? summary_width(k) : config_.vocab_size)));
  if (m == 0) return;
  Tensor selected = ws_.h->view(m, dim), normed = ws_.attn->view(m, dim);
  backend_.gather_rows(x, batch.logit_rows, selected);
  backend_.rms_norm(selected, *norm_, config_.rms_norm_eps, normed);
  Tensor out = ws_.logits->view(m, config_.vocab_size);
  acquire(classifier_unit_);
  backend_.matmul(normed, lm_head_ ? *lm_head_ : *embed_tokens_, out);
  release(classifier_unit_);
  if (k == 0) return backend_.read(out, output);
  backend_.summarise_logits(out, k, batch.nucleus_temperature, output);
  // Rows whose nucleus the summary does not hold follow whole.
  const std::size_t width = std::size_t(summary_width(k)), vocab = std::size_t(config_.vocab_size);
  for (std::size_t i = 0; i < batch.nucleus_temperature.size(); ++i) {
    const float t = batch.nucleus_temperature[i];
    if (t <= 0 || !nucleus_beyond_summary(std::span(output).subspan(i * width, width), k, t, batch.nucleus_top_p[i])) continue;
    output.resize(output.size() + vocab);
    backend_.read({static_cast<float*>(out.data) + i * vocab, 1, std::int64_t(vocab)}, std::span(output).last(vocab));
  }
}

}  // namespace banyan
