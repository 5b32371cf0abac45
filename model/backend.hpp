#pragma once
// The operations a compute backend provides. The LLaMA layer stack (llama_model.hpp) is
// written once against this interface; the CPU (cpu/) and CUDA (gpu/) backends implement it.
// Activations are row-major matrices [tokens, features] in the backend's own memory and
// element type; the model only passes them between calls and reads logits back at the end.
// Several threads may call one backend at once (each SSM actor runs its model on its own).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/dtype.hpp"
#include "model/error.hpp"
#include "model/forward_batch.hpp"
#include "model/kv_layout.hpp"
#include "model/logit_summary.hpp"
#include "model/weight_paging.hpp"
#include "model/weight_format.hpp"

namespace banyan {

// A view of an activation matrix owned by a Buffer.
struct Tensor {
  void* data = nullptr;
  std::int64_t rows = 0, cols = 0;
};

class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual Tensor view(std::int64_t rows, std::int64_t cols) = 0;  // rows*cols within capacity
};

// A weight uploaded to the backend: a matrix [rows = out, cols = in] or a vector [1, n].
class DeviceWeight {
 public:
  virtual ~DeviceWeight() = default;
  std::int64_t rows = 0, cols = 0;
  WeightFormat format = WeightFormat::f32;
  std::size_t bytes = 0;  // memory it takes on the backend
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual const KvCacheSpec& spec() const = 0;
  virtual std::size_t bytes() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Takes a weight in any format (the backend may keep `weight`'s storage, e.g. a mapped file).
  virtual std::unique_ptr<DeviceWeight> upload(WeightData weight) = 0;
  // Offloading (model/weight_paging.hpp). upload_offloaded takes a weight that lies in a mapped
  // `banyan convert` file without bringing it into compute memory; page() then pages the units
  // made of such weights under `plan` and is what brings them in. Until page(), an offloaded
  // weight cannot be computed with.
  virtual std::unique_ptr<DeviceWeight> upload_offloaded(WeightData) { throw not_offloading(); }
  virtual std::shared_ptr<WeightPaging> page(std::vector<PagedUnit>, const OffloadPlan&, bool /*evict*/) {
    throw not_offloading();
  }
  virtual std::unique_ptr<Buffer> allocate(std::int64_t elements) = 0;
  virtual std::unique_ptr<KvCache> create_kv_cache(const KvCacheSpec& spec) = 0;

  // out[i] = table[batch.tokens[i]]
  virtual void embed(const DeviceWeight& table, const ForwardBatch& batch, Tensor out) = 0;
  // out = x / rms(x) * gamma, row by row
  virtual void rms_norm(Tensor x, const DeviceWeight& gamma, float eps, Tensor out) = 0;
  // out = x · wᵀ  (x [n, in], w [out, in], out [n, out])
  virtual void matmul(Tensor x, const DeviceWeight& w, Tensor out) = 0;
  // out[i] = x · w[i]ᵀ for weights that read the same x (q, k and v; gate and up), so that a
  // backend can run them as one pass (the CPU: one fork-join, x quantized once).
  virtual void matmuls(Tensor x, std::span<const DeviceWeight* const> w, std::span<const Tensor> out) {
    for (std::size_t i = 0; i < w.size(); ++i) matmul(x, *w[i], out[i]);
  }
  // Rotary embedding in Hugging Face's rotate-half layout, in place, at batch.positions.
  virtual void rope(Tensor q, Tensor k, const ForwardBatch& batch, int head_dim, float theta) = 0;
  // Stores k and v at batch.cache_rows of `layer`, then attends each query to the rows
  // batch.visible / batch.tree_masks allow; a sequence's rows lie where kv_layout.hpp says.
  // q [n, heads*head_dim], k/v [n, kv_heads*head_dim].
  virtual void attention(int layer, Tensor q, Tensor k, Tensor v, const ForwardBatch& batch, KvCache& kv,
                         Tensor out) = 0;
  // Copies key/value cache rows (model/kv_layout.hpp: rows of the whole cache, not of a
  // sequence), every layer, in the order given: how the accepted tokens of a token tree are
  // compacted into place after verification. The rows are in range (LlamaModel::move_kv_rows
  // checks them for every backend).
  virtual void copy_kv_rows(KvCache& kv, std::span<const std::pair<std::int64_t, std::int64_t>> from_to) = 0;
  // gate = silu(gate) * up
  virtual void silu_mul(Tensor gate, Tensor up) = 0;
  // x += y
  virtual void add(Tensor x, Tensor y) = 0;
  // out[j] = x[rows[j]]
  virtual void gather_rows(Tensor x, std::span<const std::int32_t> rows, Tensor out) = 0;
  // Copies x to host memory as f32 (out.size() == rows*cols).
  virtual void read(Tensor x, std::span<float> out) = 0;
  // The summaries of x's rows of logits (model/logit_summary.hpp) in host memory
  // (out.size() == rows * summary_width(k)), with each row's weight at its temperature where
  // `temperatures` (one per row, or none) gives one: by default read, then formed on the host.
  virtual void summarise_logits(Tensor x, int k, std::span<const float> temperatures, std::span<float> out) {
    std::vector<float> rows(std::size_t(x.rows * x.cols));
    read(x, rows);
    banyan::summarise_logits(rows, int(x.cols), k, temperatures, out);
  }
  // Copies host f32 values into x (in.size() == rows*cols): a pipeline stage's input.
  virtual void write(std::span<const float> in, Tensor x) = 0;

 private:
  Error not_offloading() const { return Error("offloading on the " + name() + " backend is not built"); }
};

}  // namespace banyan
