#pragma once
// The LLaMA decoder stack, written once against the Backend interface: embedding, then per
// layer RMSNorm -> attention (GQA, RoPE) -> residual -> RMSNorm -> SwiGLU MLP -> residual,
// then the final norm and the classifier (tied to the embedding or not).
#include <functional>
#include <memory>
#include <vector>

#include "model/backend.hpp"

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

class LlamaModel {
 public:
  // Called after each tensor is uploaded: (tensors done, tensors in all).
  using Progress = std::function<void(int, int)>;

  // Uploads every weight, checking each tensor's shape against the config; throws Error
  // naming the file and the tensor on any mismatch.
  LlamaModel(const WeightSource& weights, Backend& backend, const Progress& progress = {});

  const LlamaConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  std::unique_ptr<KvCache> create_kv_cache(int slots, int capacity) const;

  // Runs the batch and writes the logits of batch.logit_rows to `logits`, row after row
  // ([logit_rows.size(), vocab_size], f32).
  void forward(const ForwardBatch& batch, KvCache& kv, std::vector<float>& logits);

 private:
  struct Workspace {
    std::int64_t tokens = 0;  // capacity in tokens
    std::unique_ptr<Buffer> x, h, q, k, v, attn, gate, up, logits;
  };

  void reserve(std::int64_t tokens);
  void run_layer(int index, const ForwardBatch& batch, KvCache& kv, Tensor x);

  LlamaConfig config_;
  Backend& backend_;
  std::unique_ptr<DeviceWeight> embed_tokens_, norm_, lm_head_;
  std::vector<LlamaDecoderLayer> layers_;
  Workspace ws_;
};

}  // namespace banyan
