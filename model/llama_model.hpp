#pragma once
// The LLaMA decoder stack, written once against the Backend interface: embedding, then per
// layer RMSNorm -> attention (GQA, RoPE) -> residual -> RMSNorm -> SwiGLU MLP -> residual,
// then the final norm and the classifier (tied to the embedding or not).
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <span>
#include <vector>

#include "model/backend.hpp"
#include "model/collective.hpp"
#include "model/weight_paging.hpp"
#include "model/weight_source.hpp"

namespace banyan {

struct LlamaAttention {
  std::unique_ptr<DeviceWeight> q_proj, k_proj, v_proj, o_proj;
};

struct LlamaMLP {
  std::unique_ptr<DeviceWeight> gate_proj, up_proj, down_proj;
};

struct LlamaDecoderLayer {
  std::unique_ptr<DeviceWeight> input_layernorm, post_attention_layernorm;
  LlamaAttention self_attn;
  LlamaMLP mlp;
};

// The decoder layers [first, end) one pipeline stage holds (end -1: through the last). The
// first stage also holds the embedding; the last the final norm and the classifier.
struct LayerRange {
  int first = 0;
  int end = -1;
};

// `layers` split into `stages` consecutive ranges of (nearly) equal size.
std::vector<LayerRange> split_layers(int layers, int stages);
// "layers FIRST-LAST" (LAST inclusive), for messages.
std::string layers_text(LayerRange range);

struct ModelOptions {
  // Format of the linear layers. Norms stay f32; the embedding takes the linear layers' format,
  // or f16 when they are quantized; an untied classifier keeps at least int8 (int4 costs it
  // accuracy).
  WeightFormat linear = WeightFormat::f32;
  DType kv_cache = DType::f32;  // f32, f16 or bf16
  // Offloading: the decoder layers and the classifier may stream from the `banyan convert` file
  // they are read from, paged under a memory budget once page_models() is given the model.
  bool offload = false;
  // Tensor parallelism: the shard of every layer this model holds (its heads of q/k/v, their
  // columns of o_proj, its rows of gate/up and columns of down_proj). Shard 0 alone holds the
  // classifier of the last stage; every shard of the first stage holds the embedding.
  TensorShard shard;
};

// The format ModelOptions give one tensor: norms f32; the embedding options.linear, or f16 when
// that is quantized; an untied classifier at least int8; every other matrix options.linear.
// Matrices whose width cannot be grouped fall back to f16.
WeightFormat weight_format_for(const std::string& name, const LlamaConfig& config, const ModelOptions& options);

// Throws Error when the model's heads or MLP columns do not split into `shard.degree` shards, or
// `shard` is not one of them.
void check_tensor_shard(const LlamaConfig& config, TensorShard shard);

// A WeightSource that encodes each tensor of `base` once, in the format the options give it,
// and hands out the same encoded weights every time: models built from it share the memory.
// `banyan convert` writes what it holds.
class EncodedWeights : public WeightSource {
 public:
  EncodedWeights(const WeightSource& base, const ModelOptions& options) : base_(base), options_(options) {}
  const LlamaConfig& config() const override { return base_.config(); }
  const std::filesystem::path& origin() const override { return base_.origin(); }
  TensorShard tensor_shard() const override { return base_.tensor_shard(); }
  bool contains(const std::string& name) const override { return base_.contains(name); }
  std::vector<std::string> tensor_names() const override { return base_.tensor_names(); }
  HostTensor read(const std::string& name) const override { return base_.read(name); }
  std::optional<WeightData> read_encoded(const std::string& name) const override;

 private:
  const WeightSource& base_;
  ModelOptions options_;
  mutable std::map<std::string, WeightData> cache_;
};

class LlamaModel;

// A memory budget for offloaded weights (model/weight_paging.hpp).
struct PagingBudget {
  std::size_t budget = 0;   // at most this many weight bytes mapped in at once
  std::size_t reserve = 0;  // of the budget, for streamed units in flight; 0: chosen from it
  bool evict = false;       // streamed weights leave the page cache after use (a CPU node)
};

// Pages the weights of `models` (each loaded with ModelOptions::offload) under one budget: one
// plan over all their units in the order given, so that what stays resident and what streams
// is chosen for the models together, and one paging (the backend's) streaming them in that order
// (a node's pipeline stages: the next stage's first layer comes in while this one's last computes).
// Returns the paging the models now share. Throws Error when the budget cannot stream them.
std::shared_ptr<WeightPaging> page_models(const std::vector<LlamaModel*>& models, const PagingBudget& budget);

class LlamaModel {
 public:
  // Called after each tensor is uploaded: (tensors done, tensors in all).
  using Progress = std::function<void(int, int)>;

  // Uploads every weight, checking each tensor's shape against the config; throws Error
  // naming the file and the tensor on any mismatch. Weights the source already holds in a
  // backend format (a `banyan convert` file) are taken as they are.
  // With `layers`, only one pipeline stage's part of the model.
  LlamaModel(const WeightSource& weights, Backend& backend, const ModelOptions& options = {},
             const Progress& progress = {}, LayerRange layers = {});

  const LlamaConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  const TensorShard& shard() const { return options_.shard; }
  // A tensor shard sums its partial results with the other shards through `collective`; a
  // shard's forward throws until it has one.
  void use_collective(std::shared_ptr<Collective> collective) { collective_ = std::move(collective); }
  CollectiveStats collective_stats() const { return collective_ ? collective_->stats() : CollectiveStats{}; }
  // Bytes the weights take on the backend.
  std::size_t weight_bytes() const { return weight_bytes_; }
  // Weight bytes one decoding step reads: all but the embedding table, of which it reads a row
  // (unless the table is also the classifier).
  std::size_t decode_bytes() const;
  Backend& backend() const { return backend_; }
  // The paging of an offloaded model's weights (shared with the models paged with it); null
  // when every weight is resident.
  const WeightPaging* paged() const { return paged_.get(); }
  // A KV cache for the layers this model holds (model/kv_layout.hpp).
  std::unique_ptr<KvCache> create_kv_cache(const KvLayout& layout) const;
  // Copies key/value rows within one slot of `kv` (whose block table is `blocks` in a paged
  // cache), every layer, in the order given (how the accepted tokens of a verified tree are
  // compacted into place). Throws, before any copy, if the slot or a row is out of range.
  void move_kv_rows(KvCache& kv, int slot, std::span<const std::pair<int, int>> from_to,
                    std::span<const std::int32_t> blocks = {});

  int first_layer() const { return first_layer_; }
  int end_layer() const { return first_layer_ + int(layers_.size()); }
  bool is_first_stage() const { return first_layer_ == 0; }
  bool is_last_stage() const { return end_layer() == config_.num_hidden_layers; }

  // Runs the batch and writes the logits of batch.logit_rows to `logits`, row after row
  // ([logit_rows.size(), vocab_size], f32). Needs the whole model.
  void forward(const ForwardBatch& batch, KvCache& kv, std::vector<float>& logits);
  // This stage's part of a forward pass: the first stage embeds batch.tokens, a later one
  // takes the previous stage's `input` ([batch.size(), hidden_size] f32); the last stage writes
  // the logits as forward() does, an earlier one its activations, the next stage's input.
  // Tensor shards other than 0 write no logits (shard 0 writes them all).
  void forward_stage(const ForwardBatch& batch, KvCache& kv, std::span<const float> input, std::vector<float>& output);

 private:
  struct Workspace {
    std::int64_t tokens = 0;  // capacity in tokens
    std::unique_ptr<Buffer> x, h, q, k, v, attn, gate, up, logits;
  };

  friend std::shared_ptr<WeightPaging> page_models(const std::vector<LlamaModel*>&, const PagingBudget&);
  void reserve(std::int64_t tokens);
  void acquire(int unit) { if (paged_) paged_->acquire(first_unit_ + unit); }
  void release(int unit) { if (paged_) paged_->release(first_unit_ + unit); }
  void run_layer(int index, const ForwardBatch& batch, KvCache& kv, Tensor x);  // index within this stage
  // A shard's partial o_proj / down_proj output, summed over the shards in place.
  void sum_over_shards(Tensor partial);

  LlamaConfig config_;
  ModelOptions options_;
  Backend& backend_;
  // This shard's widths: query and key/value columns, MLP columns (the whole model's without
  // tensor parallelism).
  std::int64_t q_width_ = 0, kv_width_ = 0, mlp_width_ = 0;
  std::shared_ptr<Collective> collective_;
  std::size_t weight_bytes_ = 0;
  std::unique_ptr<DeviceWeight> embed_tokens_, norm_, lm_head_;  // those this stage needs
  int first_layer_ = 0;
  std::vector<LlamaDecoderLayer> layers_;  // layers [first_layer_, first_layer_ + size)
  // Paging units: the layers in order, then the classifier (last stage), then the embedding
  // (first stage, when it is not also the classifier).
  int classifier_unit_ = -1, embedding_unit_ = -1;
  std::vector<PagedUnit> units_;  // collected while loading (ModelOptions::offload), until paged
  std::shared_ptr<WeightPaging> paged_;
  int first_unit_ = 0;  // where this model's units start among the paging's
  Workspace ws_;
};

}  // namespace banyan
