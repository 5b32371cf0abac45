#include "cpu/cpu_backend.hpp"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <cstring>
#include <thread>

#include "cpu/kernels.hpp"
#include "cpu/thread_pool.hpp"
#include "model/error.hpp"

namespace banyan::cpu {

namespace {

float* f32(Tensor t) { return static_cast<float*>(t.data); }

struct CpuWeight : DeviceWeight {
  std::vector<float> data;
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

// Per layer and slot, `capacity` rows of kv_heads * head_dim floats, for keys and for values.
class CpuKvCache : public KvCache {
 public:
  explicit CpuKvCache(const KvCacheSpec& spec)
      : spec_(spec),
        row_(std::int64_t(spec.kv_heads) * spec.head_dim),
        keys_(std::size_t(spec.layers) * spec.slots * spec.capacity * row_),
        values_(keys_.size()) {}

  const KvCacheSpec& spec() const override { return spec_; }
  std::size_t bytes() const override { return 2 * keys_.size() * sizeof(float); }

  float* key(int layer, int slot, int row) { return keys_.data() + offset(layer, slot, row); }
  float* value(int layer, int slot, int row) { return values_.data() + offset(layer, slot, row); }
  std::int64_t row_size() const { return row_; }

 private:
  std::size_t offset(int layer, int slot, int row) const {
    return ((std::size_t(layer) * spec_.slots + slot) * spec_.capacity + row) * std::size_t(row_);
  }
  KvCacheSpec spec_;
  std::int64_t row_;
  std::vector<float> keys_, values_;
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) { openblas_set_num_threads(threads); }

  std::string name() const override { return "cpu (" + std::to_string(pool_.size()) + " threads)"; }

  std::unique_ptr<DeviceWeight> upload(HostTensor t) override {
    auto w = std::make_unique<CpuWeight>();
    w->rows = t.shape.size() == 2 ? t.shape[0] : 1;
    w->cols = t.shape.empty() ? 1 : t.shape.back();
    w->data = std::move(t.data);
    return w;
  }

  std::unique_ptr<Buffer> allocate(std::int64_t elements) override {
    return std::make_unique<CpuBuffer>(elements);
  }

  std::unique_ptr<KvCache> create_kv_cache(const KvCacheSpec& spec) override {
    return std::make_unique<CpuKvCache>(spec);
  }

  void embed(const DeviceWeight& table, const ForwardBatch& batch, Tensor out) override {
    const auto& t = cpu_weight(table);
    for (std::int64_t i = 0; i < out.rows; ++i)
      std::memcpy(f32(out) + i * out.cols, t.data.data() + std::int64_t(batch.tokens[std::size_t(i)]) * t.cols,
                  std::size_t(out.cols) * sizeof(float));
  }

  void rms_norm(Tensor x, const DeviceWeight& gamma, float eps, Tensor out) override {
    const float* g = cpu_weight(gamma).data.data();
    pool_.parallel_for(x.rows, 8, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) rms_norm_row(f32(x) + i * x.cols, g, eps, x.cols, f32(out) + i * x.cols);
    });
  }

  void matmul(Tensor x, const DeviceWeight& w, Tensor out) override {
    const auto& m = cpu_weight(w);
    if (x.rows == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(m.rows), int(m.cols), 1.0f, m.data.data(), int(m.cols), f32(x),
                  1, 0.0f, f32(out), 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(x.rows), int(m.rows), int(m.cols), 1.0f, f32(x),
                  int(x.cols), m.data.data(), int(m.cols), 0.0f, f32(out), int(out.cols));
    }
  }

  void rope(Tensor q, Tensor k, const ForwardBatch& batch, int head_dim, float theta) override {
    const int half = head_dim / 2;
    pool_.parallel_for(q.rows, 4, [&](std::int64_t begin, std::int64_t end) {
      std::vector<float> cos(static_cast<std::size_t>(half)), sin(static_cast<std::size_t>(half));
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
    const std::int64_t n = q.rows, row = kv.row_size();
    for (std::int64_t i = 0; i < n; ++i) {
      const int slot = batch.slots[std::size_t(i)], r = batch.cache_rows[std::size_t(i)];
      std::memcpy(kv.key(layer, slot, r), f32(k) + i * row, std::size_t(row) * sizeof(float));
      std::memcpy(kv.value(layer, slot, r), f32(v) + i * row, std::size_t(row) * sizeof(float));
    }
    const int head_dim = kv.spec().head_dim;
    const int heads = int(q.cols / head_dim), group = heads / kv.spec().kv_heads;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    pool_.parallel_for(n * heads, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<float> scores;
      std::vector<int> rows;
      for (std::int64_t task = begin; task < end; ++task) {
        const std::int64_t i = task / heads;
        const int h = int(task % heads), kvh = h / group;
        const int slot = batch.slots[std::size_t(i)], visible = batch.visible[std::size_t(i)];
        rows.resize(std::size_t(visible));
        for (int j = 0; j < visible; ++j) rows[std::size_t(j)] = j;
        for (std::uint64_t mask = batch.tree_masks[std::size_t(i)]; mask != 0; mask &= mask - 1)
          rows.push_back(visible + __builtin_ctzll(mask));

        const float* qh = f32(q) + i * q.cols + std::int64_t(h) * head_dim;
        scores.resize(rows.size());
        float max_score = -INFINITY;
        for (std::size_t j = 0; j < rows.size(); ++j) {
          scores[j] = dot(qh, kv.key(layer, slot, rows[j]) + kvh * head_dim, head_dim) * scale;
          max_score = std::max(max_score, scores[j]);
        }
        float total = 0;
        for (float& s : scores) total += (s = std::exp(s - max_score));
        float* oh = f32(out) + i * out.cols + std::int64_t(h) * head_dim;
        std::fill(oh, oh + head_dim, 0.0f);
        for (std::size_t j = 0; j < rows.size(); ++j)
          axpy(scores[j] / total, kv.value(layer, slot, rows[j]) + kvh * head_dim, oh, head_dim);
      }
    });
  }

  void copy_kv_rows(KvCache& kv_base, int slot, std::span<const std::pair<int, int>> from_to) override {
    auto& kv = static_cast<CpuKvCache&>(kv_base);
    const std::size_t bytes = std::size_t(kv.row_size()) * sizeof(float);
    for (int layer = 0; layer < kv.spec().layers; ++layer) {
      for (const auto& [from, to] : from_to) {
        if (from < 0 || to < 0 || from >= kv.spec().capacity || to >= kv.spec().capacity)
          throw Error("cpu: KV row move " + std::to_string(from) + " -> " + std::to_string(to) + " out of range");
        std::memcpy(kv.key(layer, slot, to), kv.key(layer, slot, from), bytes);
        std::memcpy(kv.value(layer, slot, to), kv.value(layer, slot, from), bytes);
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

 private:
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuOptions& options) {
  const int threads = options.threads > 0 ? options.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace banyan::cpu
