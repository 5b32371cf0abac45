#include "cpu/cpu_backend.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "cpu/kernels.hpp"
#include "cpu/matmul.hpp"
#include "cpu/simd_kernels.hpp"
#include "cpu/thread_pool.hpp"
#include "model/error.hpp"
#include "model/paged_weights.hpp"

namespace banyan::cpu {

namespace {

float* f32(Tensor t) { return static_cast<float*>(t.data); }

struct CpuWeight : DeviceWeight {
  WeightData data;
};

const CpuWeight& cpu_weight(const DeviceWeight& w) { return static_cast<const CpuWeight&>(w); }

class CpuBuffer : public Buffer {
 public:
  explicit CpuBuffer(std::int64_t elements) : data_(std::size_t(elements)) {}
  Tensor view(std::int64_t rows, std::int64_t cols) override {
    if (rows * cols > std::int64_t(data_.size())) throw Error("cpu: buffer view larger than the buffer");
    return {data_.data(), rows, cols};
  }

 private:
  std::vector<float> data_;
};

// Per layer and key/value head, the cache's rows (model/kv_layout.hpp) of head_dim values (f32,
// f16 or bf16), for keys and for values. A head's rows lie back to back, so a sequence's rows
// in one run of cache rows are read as one stream (with the heads side by side in each row, a
// head's rows were 256-byte pieces 1 KiB apart for TinyLlama, and decoding after 1024 tokens
// took 1.4x the time it takes after 128).
class CpuKvCache : public KvCache {
 public:
  explicit CpuKvCache(const KvCacheSpec& spec)
      : spec_(spec),
        elem_(dtype_size(spec.dtype)),
        keys_(std::size_t(spec.layers) * std::size_t(spec.rows()) * spec.kv_heads * spec.head_dim * elem_),
        values_(keys_.size()) {}

  const KvCacheSpec& spec() const override { return spec_; }
  std::size_t bytes() const override { return 2 * keys_.size(); }

  std::byte* key(int layer, int head, std::int64_t row) { return keys_.data() + offset(layer, head, row); }
  std::byte* value(int layer, int head, std::int64_t row) { return values_.data() + offset(layer, head, row); }
  std::size_t head_bytes() const { return std::size_t(spec_.head_dim) * elem_; }

  // Stores one f32 row of k (or v) values, every head's, in the cache's element type.
  void store(bool keys, int layer, std::int64_t row, const float* src) {
    for (int h = 0; h < spec_.kv_heads; ++h) {
      std::byte* dst = keys ? key(layer, h, row) : value(layer, h, row);
      const float* from = src + std::int64_t(h) * spec_.head_dim;
      if (spec_.dtype == DType::f32) {
        std::memcpy(dst, from, head_bytes());
      } else {
        auto* half = reinterpret_cast<std::uint16_t*>(dst);
        const bool brain = spec_.dtype == DType::bf16;
        for (int i = 0; i < spec_.head_dim; ++i) half[i] = brain ? f32_to_bf16(from[i]) : f32_to_f16(from[i]);
      }
    }
  }

 private:
  std::size_t offset(int layer, int head, std::int64_t row) const {
    return ((std::size_t(layer) * spec_.kv_heads + head) * std::size_t(spec_.rows()) + std::size_t(row)) * head_bytes();
  }
  KvCacheSpec spec_;
  std::size_t elem_;
  std::vector<std::byte> keys_, values_;
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const CpuOptions& o)
      : pool_(o.threads, o.spin_us), kernels_(best_kernels()), matmul_(kernels_, pool_) {}

  std::string name() const override {
    return "cpu (" + std::to_string(pool_.size()) + " threads, " + kernels_.name + " kernels)";
  }

  std::unique_ptr<DeviceWeight> upload(WeightData data) override {
    auto w = std::make_unique<CpuWeight>();
    w->rows = data.rows;
    w->cols = data.cols;
    w->format = data.format;
    w->bytes = data.bytes.size();
    w->data = std::move(data);
    return w;
  }

  // Compute reads an offloaded weight where it lies in the file mapping; paging maps its pages
  // in and drops them.
  std::unique_ptr<DeviceWeight> upload_offloaded(WeightData data) override { return upload(std::move(data)); }
  std::shared_ptr<WeightPaging> page(std::vector<PagedUnit> units, const OffloadPlan& plan, bool evict) override {
    return std::make_shared<PagedWeights>(std::move(units), plan, evict);
  }

  std::unique_ptr<Buffer> allocate(std::int64_t elements) override { return std::make_unique<CpuBuffer>(elements); }

  std::unique_ptr<KvCache> create_kv_cache(const KvCacheSpec& spec) override {
    return std::make_unique<CpuKvCache>(spec);
  }

  void embed(const DeviceWeight& table, const ForwardBatch& batch, Tensor out) override {
    const WeightData& t = cpu_weight(table).data;
    for (std::int64_t i = 0; i < out.rows; ++i) decode_row(t, batch.tokens[std::size_t(i)], f32(out) + i * out.cols);
  }

  void rms_norm(Tensor x, const DeviceWeight& gamma, float eps, Tensor out) override {
    const float* g = reinterpret_cast<const float*>(cpu_weight(gamma).data.bytes.data());
    pool_.parallel_for(x.rows, 8, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) rms_norm_row(f32(x) + i * x.cols, g, eps, x.cols, f32(out) + i * x.cols);
    });
  }

  void matmul(Tensor x, const DeviceWeight& w, Tensor out) override {
    matmul_.run(cpu_weight(w).data, f32(x), x.rows, f32(out));
  }

  void matmuls(Tensor x, std::span<const DeviceWeight* const> w, std::span<const Tensor> out) override {
    std::vector<Matmul::Product> products;
    products.reserve(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) products.push_back({&cpu_weight(*w[i]).data, f32(out[i])});
    matmul_.run(products, f32(x), x.rows);
  }

  void rope(Tensor q, Tensor k, const ForwardBatch& batch, int head_dim, float theta) override {
    const int half = head_dim / 2;
    pool_.parallel_for(q.rows, 4, [&](std::int64_t begin, std::int64_t end) {
      thread_local std::vector<float> cos, sin;
      cos.resize(std::size_t(half));
      sin.resize(std::size_t(half));
      for (std::int64_t i = begin; i < end; ++i) {
        // The angle is formed in f32 as Hugging Face does, so long positions round alike.
        const float pos = float(batch.positions[std::size_t(i)]);
        for (int j = 0; j < half; ++j) {
          const float inv_freq = 1.0f / std::pow(theta, float(2 * j) / float(head_dim));
          const float angle = pos * inv_freq;
          cos[std::size_t(j)] = float(std::cos(double(angle)));
          sin[std::size_t(j)] = float(std::sin(double(angle)));
        }
        rope_row(f32(q) + i * q.cols, int(q.cols / head_dim), head_dim, cos.data(), sin.data());
        rope_row(f32(k) + i * k.cols, int(k.cols / head_dim), head_dim, cos.data(), sin.data());
      }
    });
  }

  void attention(int layer, Tensor q, Tensor k, Tensor v, const ForwardBatch& batch, KvCache& kv_base,
                 Tensor out) override {
    auto& kv = static_cast<CpuKvCache&>(kv_base);
    const std::int64_t n = q.rows;
    auto rows_of = [&](std::int64_t i) {
      return kv_row_map(kv.spec(), batch.slots[std::size_t(i)], batch.block_table(std::size_t(i)));
    };
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t r = rows_of(i).row(batch.cache_rows[std::size_t(i)]);
      kv.store(true, layer, r, f32(k) + i * k.cols);
      kv.store(false, layer, r, f32(v) + i * v.cols);
    }
    const int head_dim = kv.spec().head_dim;
    const int heads = int(q.cols / head_dim), group = heads / kv.spec().kv_heads;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    // One task per token and key/value head: the heads of a group share its rows' reads.
    const int kv_heads = kv.spec().kv_heads;
    pool_.parallel_for(n * kv_heads, 1, [&](std::int64_t begin, std::int64_t end) {
      thread_local std::vector<float> scores;
      thread_local std::vector<AttentionState> states;
      states.resize(std::size_t(group));
      for (std::int64_t task = begin; task < end; ++task) {
        const std::int64_t i = task / kv_heads;
        const int kvh = int(task % kv_heads), visible = batch.visible[std::size_t(i)];
        const KvRowMap rows = rows_of(i);
        const float* qg = f32(q) + i * q.cols + std::int64_t(kvh) * group * head_dim;
        float* og = f32(out) + i * out.cols + std::int64_t(kvh) * group * head_dim;
        std::fill(og, og + group * head_dim, 0.0f);
        for (int h = 0; h < group; ++h) states[std::size_t(h)] = {-INFINITY, 0.0f, og + h * head_dim};
        // The visible prefix in runs of consecutive rows (one in the fixed layout), then each
        // ancestor the tree mask adds.
        scores.resize(std::max<std::size_t>(scores.size(), std::size_t(group) * (std::size_t(visible) + 1)));
        auto attend = [&](std::int64_t first, std::int64_t count) {
          kernels_.attend(qg, group, kv.key(layer, kvh, first), kv.value(layer, kvh, first), head_dim, count, head_dim,
                          scale, kv.spec().dtype, scores.data(), states.data());
        };
        rows.runs(visible, attend);
        for (std::uint64_t m = batch.tree_masks[std::size_t(i)]; m != 0; m &= m - 1)
          attend(rows.row(visible + __builtin_ctzll(m)), 1);
        for (int h = 0; h < group; ++h) {
          const float inv = 1.0f / states[std::size_t(h)].l;
          for (int d = 0; d < head_dim; ++d) og[h * head_dim + d] *= inv;
        }
      }
    });
  }

  void copy_kv_rows(KvCache& kv_base, std::span<const std::pair<std::int64_t, std::int64_t>> from_to) override {
    auto& kv = static_cast<CpuKvCache&>(kv_base);
    for (int layer = 0; layer < kv.spec().layers; ++layer) {
      for (int h = 0; h < kv.spec().kv_heads; ++h)
        for (const auto& [from, to] : from_to) {
          std::memcpy(kv.key(layer, h, to), kv.key(layer, h, from), kv.head_bytes());
          std::memcpy(kv.value(layer, h, to), kv.value(layer, h, from), kv.head_bytes());
        }
    }
  }

  void silu_mul(Tensor gate, Tensor up) override {
    pool_.parallel_for(gate.rows, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) silu_mul_row(f32(gate) + i * gate.cols, f32(up) + i * up.cols, gate.cols);
    });
  }

  void add(Tensor x, Tensor y) override {
    float* a = f32(x);
    const float* b = f32(y);
    for (std::int64_t i = 0, n = x.rows * x.cols; i < n; ++i) a[i] += b[i];
  }

  void gather_rows(Tensor x, std::span<const std::int32_t> rows, Tensor out) override {
    for (std::size_t j = 0; j < rows.size(); ++j)
      std::memcpy(f32(out) + std::int64_t(j) * out.cols, f32(x) + rows[j] * x.cols, std::size_t(x.cols) * sizeof(float));
  }

  void read(Tensor x, std::span<float> out) override {
    std::memcpy(out.data(), x.data, std::size_t(x.rows * x.cols) * sizeof(float));
  }

  void summarise_logits(Tensor x, int k, std::span<const float> temperatures, std::span<float> out) override {
    banyan::summarise_logits({f32(x), std::size_t(x.rows * x.cols)}, int(x.cols), k, temperatures, out);
  }

  void write(std::span<const float> in, Tensor x) override {
    std::memcpy(x.data, in.data(), std::size_t(x.rows * x.cols) * sizeof(float));
  }

 private:
  ThreadPool pool_;
  const KernelSet& kernels_;
  Matmul matmul_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuOptions& options) {
  CpuOptions o = options;
  if (o.threads <= 0) o.threads = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend>(o);
}

}  // namespace banyan::cpu
