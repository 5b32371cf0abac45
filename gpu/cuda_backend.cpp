#include "gpu/cuda_backend.hpp"

#include <cmath>
#include <cstring>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <vector>

#include "gpu/cuda_check.hpp"
#include "gpu/cuda_weight.hpp"
#include "gpu/device_memory.hpp"
#include "gpu/host_staging.hpp"
#include "gpu/kernels.hpp"
#include "gpu/weight_stream.hpp"
#include "model/error.hpp"

namespace banyan::gpu {

namespace {

float* f32(Tensor t) { return static_cast<float*>(t.data); }

void check_blas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuda: ") + what + ": cuBLAS " + cublasGetStatusName(status) + " (" +
                cublasGetStatusString(status) + ")");
}

const WeightView& view_of(const DeviceWeight& w) { return static_cast<const CudaWeight&>(w).view; }

class CudaBuffer : public Buffer {
 public:
  explicit CudaBuffer(std::int64_t elements) : memory_(std::size_t(elements) * sizeof(float)), elements_(elements) {}
  Tensor view(std::int64_t rows, std::int64_t cols) override {
    if (rows * cols > elements_) throw Error("cuda: buffer view larger than the buffer");
    return {memory_.data(), rows, cols};
  }

 private:
  DeviceMemory memory_;
  std::int64_t elements_;
};

class CudaKvCache : public KvCache {
 public:
  explicit CudaKvCache(const KvCacheSpec& spec) : spec_(spec) {
    if (spec.head_dim > kMaxHeadDim)
      throw Error("cuda: attention takes heads of at most " + std::to_string(kMaxHeadDim) + " dimensions; this model's have " +
                  std::to_string(spec.head_dim));
    if (spec.rows() > std::numeric_limits<std::int32_t>::max())
      throw Error("cuda: a KV cache of " + std::to_string(spec.rows()) + " rows is more than the kernels index");
    const std::size_t bytes = std::size_t(spec.layers) * std::size_t(spec.rows()) * spec.kv_heads * spec.head_dim *
                              dtype_size(spec.dtype);
    keys_ = DeviceMemory(bytes);
    values_ = DeviceMemory(bytes);
    view_ = {keys_.data(),
             values_.data(),
             spec.layers,
             spec.rows(),
             spec.paged() ? spec.paging.block_rows : spec.capacity,
             spec.kv_heads,
             spec.head_dim,
             spec.dtype == DType::f16 ? KvElement::f16 : spec.dtype == DType::bf16 ? KvElement::bf16 : KvElement::f32};
  }
  const KvCacheSpec& spec() const override { return spec_; }
  std::size_t bytes() const override { return keys_.bytes() + values_.bytes(); }
  const KvView& view() const { return view_; }

 private:
  KvCacheSpec spec_;
  DeviceMemory keys_, values_;
  KvView view_;
};

// Device scratch that only grows. Growing waits for the stream: queued kernels may still use
// the old block.
class Scratch {
 public:
  void* at_least(std::size_t bytes, cudaStream_t stream) {
    if (bytes > memory_.bytes()) {
      check(cudaStreamSynchronize(stream), "growing scratch memory");
      memory_ = DeviceMemory();
      memory_ = DeviceMemory(bytes);
    }
    return memory_.data();
  }

 private:
  DeviceMemory memory_;
};

// All work goes to one stream in the order it is asked for, under one lock: several threads
// (SSM runners, pipeline stages) may share the backend, and a kernel never needs a result that
// another thread's call has yet to enqueue. Only read() and summarise_logits() wait for the device.
class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    check(cudaSetDevice(device_), "selecting the device");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream");
    check_blas(cublasCreate(&blas_), "creating a cuBLAS handle");
    check_blas(cublasSetStream(blas_, stream_), "cublasSetStream");
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, device_), "reading the device's properties");
    name_ = (device_ == 0 ? std::string("cuda") : "cuda:" + std::to_string(device_)) + " (" + p.name + ", " +
             std::to_string(p.multiProcessorCount) + " SMs)";
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return name_; }
  CudaQueue queue() {
    return {device_, stream_, [this] { return enter(); }};
  }

  std::unique_ptr<DeviceWeight> upload(WeightData data) override {
    auto lock = enter();
    auto w = weight_of(data);
    upload_resident(data, *w);
    return w;
  }

  std::unique_ptr<DeviceWeight> upload_offloaded(WeightData data) override {
    auto w = weight_of(data);
    w->host = std::move(data);
    return w;
  }

  std::shared_ptr<WeightPaging> page(std::vector<PagedUnit> units, const OffloadPlan& plan, bool) override {
    return std::make_shared<CudaWeightPaging>(std::move(units), plan, [this] { return enter(); }, stream_);
  }

  std::unique_ptr<Buffer> allocate(std::int64_t elements) override {
    auto lock = enter();
    return std::make_unique<CudaBuffer>(elements);
  }

  std::unique_ptr<KvCache> create_kv_cache(const KvCacheSpec& spec) override {
    auto lock = enter();
    auto kv = std::make_unique<CudaKvCache>(spec);
    check(cudaMemsetAsync(kv->view().keys, 0, kv->bytes() / 2, stream_), "clearing the KV cache");
    check(cudaMemsetAsync(kv->view().values, 0, kv->bytes() / 2, stream_), "clearing the KV cache");
    return kv;
  }

  void embed(const DeviceWeight& table, const ForwardBatch& batch, Tensor out) override {
    auto lock = enter();
    gpu::embed(view_of(table), device_batch(batch), f32(out), stream_);
  }

  void rms_norm(Tensor x, const DeviceWeight& gamma, float eps, Tensor out) override {
    auto lock = enter();
    gpu::rms_norm(f32(x), static_cast<const float*>(view_of(gamma).data), eps, int(x.rows), int(x.cols), f32(out), stream_);
  }

  void matmul(Tensor x, const DeviceWeight& w, Tensor out) override {
    auto lock = enter();
    const WeightView& v = view_of(w);
    const bool stored_groups = v.format != WeightFormat::f32 && v.cols % kQuantGroup == 0;
    if (stored_groups && x.rows <= kGemvMaxTokens) return small_batch_gemv(v, f32(x), int(x.rows), f32(out), stream_);
    switch (v.format) {
      case WeightFormat::f32: return gemm_f32(v, x, out);
      case WeightFormat::f16: return gemm_half(v.data, false, v, x, out);
      case WeightFormat::bf16: return gemm_half(v.data, true, v, x, out);
      case WeightFormat::q8:
      case WeightFormat::q4: {
        auto* expanded = static_cast<std::uint16_t*>(expanded_weight_.at_least(std::size_t(v.rows * v.cols) * 2, stream_));
        dequantize(v, expanded, stream_);
        return gemm_half(expanded, false, v, x, out);
      }
    }
  }

  void rope(Tensor q, Tensor k, const ForwardBatch& batch, int head_dim, float theta) override {
    if (head_dim % 2 != 0 || head_dim > kMaxHeadDim)
      throw Error("cuda: rotary embedding takes an even head size of at most " + std::to_string(kMaxHeadDim) + ", not " +
                  std::to_string(head_dim));
    auto lock = enter();
    gpu::rope(f32(q), int(q.cols), f32(k), int(k.cols), device_batch(batch), head_dim, inverse_frequencies(head_dim, theta),
              stream_);
  }

  void attention(int layer, Tensor q, Tensor k, Tensor v, const ForwardBatch& batch, KvCache& kv_base,
                 Tensor out) override {
    auto lock = enter();
    const KvView& kv = static_cast<CudaKvCache&>(kv_base).view();
    const BatchView& b = device_batch(batch);
    store_kv(f32(k), f32(v), b, kv, layer, stream_);
    gpu::attention(f32(q), int(q.cols / kv.head_dim), b, kv, layer, f32(out), stream_);
  }

  void copy_kv_rows(KvCache& kv_base, std::span<const std::pair<std::int64_t, std::int64_t>> from_to) override {
    auto lock = enter();
    const auto& kv = static_cast<CudaKvCache&>(kv_base);
    std::vector<std::int32_t> moves;  // the cache's rows fit in int32 (CudaKvCache checks)
    for (const auto& [from, to] : from_to) {
      moves.push_back(std::int32_t(from));
      moves.push_back(std::int32_t(to));
    }
    gpu::copy_kv_rows(kv.view(), upload_indices(moves), int(from_to.size()), stream_);
  }

  void silu_mul(Tensor gate, Tensor up) override {
    auto lock = enter();
    gpu::silu_mul(f32(gate), f32(up), gate.rows * gate.cols, stream_);
  }

  void add(Tensor x, Tensor y) override {
    auto lock = enter();
    gpu::add(f32(x), f32(y), x.rows * x.cols, stream_);
  }

  void gather_rows(Tensor x, std::span<const std::int32_t> rows, Tensor out) override {
    auto lock = enter();
    gpu::gather_rows(f32(x), x.cols, upload_indices({rows.begin(), rows.end()}), int(rows.size()), f32(out), stream_);
  }

  void read(Tensor x, std::span<float> out) override {
    auto lock = enter();
    check(cudaMemcpyAsync(out.data(), x.data, out.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_), "read");
    check(cudaStreamSynchronize(stream_), "running the queued kernels");
  }

  // Only the summaries cross to the host: for greedy decoding 12 bytes a row, not the vocabulary.
  void summarise_logits(Tensor x, int k, std::span<const float> temperatures, std::span<float> out) override {
    if (k < 1 || k > kMaxSummaryTokens || k > x.cols || out.size() != std::size_t(x.rows * summary_width(k)) ||
        (!temperatures.empty() && temperatures.size() != std::size_t(x.rows)))
      throw Error("cuda: logit summaries of " + std::to_string(k) + " tokens into " + std::to_string(out.size()) +
                  " values, with " + std::to_string(temperatures.size()) + " temperatures for " + std::to_string(x.rows) + " rows");
    auto lock = enter();
    // The temperatures go up behind the summaries' room.
    auto* summaries = static_cast<float*>(summary_memory_.at_least((out.size() + temperatures.size()) * sizeof(float), stream_));
    float* row_temperatures = temperatures.empty() ? nullptr : summaries + out.size();
    if (row_temperatures)
      check(cudaMemcpyAsync(row_temperatures, temperatures.data(), temperatures.size() * sizeof(float), cudaMemcpyHostToDevice,
                            stream_),
            "writing sampling temperatures");
    gpu::summarise_logits(f32(x), int(x.rows), int(x.cols), k, row_temperatures, summaries, stream_);
    check(cudaMemcpyAsync(out.data(), summaries, out.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_),
          "reading logit summaries");
    check(cudaStreamSynchronize(stream_), "running the queued kernels");
  }

  void write(std::span<const float> in, Tensor x) override {
    auto lock = enter();
    check(cudaMemcpyAsync(x.data, in.data(), in.size() * sizeof(float), cudaMemcpyHostToDevice, stream_), "write");
    check(cudaStreamSynchronize(stream_), "write");  // `in` may go once this returns
  }

 private:
  static std::unique_ptr<CudaWeight> weight_of(const WeightData& data) {
    auto w = std::make_unique<CudaWeight>();
    w->rows = data.rows;
    w->cols = data.cols;
    w->format = data.format;
    w->bytes = data.bytes.size();
    return w;
  }

  // Takes the lock; the calling thread may not have chosen the device yet.
  std::unique_lock<std::mutex> enter() {
    std::unique_lock<std::mutex> lock(mutex_);
    check(cudaSetDevice(device_), "selecting the device");
    return lock;
  }

  // out = x · wᵀ in f32 (row-major x [n, in], w [out, in] are column-major [in, n], [in, out]).
  void gemm_f32(const WeightView& w, Tensor x, Tensor out) {
    const float one = 1.0f, zero = 0.0f;
    check_blas(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(x.rows), int(w.cols), &one,
                           static_cast<const float*>(w.data), int(w.cols), f32(x), int(w.cols), &zero, f32(out), int(w.rows)),
               "f32 matmul");
  }

  // The same with f16 weights and inputs on tensor cores, f32 accumulation and output.
  // A 16-bit weight (f16, or bf16 when `brain`) on tensor cores: the activations rounded to the
  // same type, f32 accumulation and output.
  void gemm_half(const void* weight, bool brain, const WeightView& w, Tensor x, Tensor out) {
    const std::int64_t n = x.rows * x.cols;
    auto* x16 = static_cast<std::uint16_t*>(half_input_.at_least(std::size_t(n) * 2, stream_));
    to_half(f32(x), n, x16, brain, stream_);
    const float one = 1.0f, zero = 0.0f;
    const cudaDataType type = brain ? CUDA_R_16BF : CUDA_R_16F;
    check_blas(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(x.rows), int(w.cols), &one, weight, type,
                            int(w.cols), x16, type, int(w.cols), &zero, f32(out), CUDA_R_32F, int(w.rows),
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               brain ? "bf16 matmul" : "f16 matmul");
  }

  // The layer stack hands every call of one pass the same batch: it goes to the device once.
  const BatchView& device_batch(const ForwardBatch& b) {
    if (b.tokens != batch_.tokens || b.positions != batch_.positions || b.slots != batch_.slots ||
        b.cache_rows != batch_.cache_rows || b.visible != batch_.visible || b.tree_masks != batch_.tree_masks ||
        b.kv_blocks != batch_.kv_blocks || b.kv_block_begin != batch_.kv_block_begin) {
      batch_ = b;
      const std::size_t n = b.size();
      // Masks first (8-byte aligned), then the int32 fields (the block tables' empty unless paged).
      const std::vector<std::int32_t>* fields[] = {&b.tokens,  &b.positions,      &b.slots,    &b.cache_rows,
                                                   &b.visible, &b.kv_block_begin, &b.kv_blocks};
      std::size_t offsets[std::size(fields)], bytes = n * 8;
      for (std::size_t f = 0; f < std::size(fields); ++f) {
        offsets[f] = bytes;
        bytes += fields[f]->size() * 4;
      }
      std::byte* host = staging_.take(bytes);
      std::memcpy(host, b.tree_masks.data(), n * 8);
      for (std::size_t f = 0; f < std::size(fields); ++f)
        if (!fields[f]->empty()) std::memcpy(host + offsets[f], fields[f]->data(), fields[f]->size() * 4);
      auto* device = static_cast<std::byte*>(batch_memory_.at_least(bytes, stream_));
      staging_.send(device, bytes, stream_);
      auto field = [&](int f) {
        return fields[f]->empty() ? nullptr : reinterpret_cast<const std::int32_t*>(device + offsets[f]);
      };
      batch_view_ = {field(0), field(1), field(2), field(3), field(4), reinterpret_cast<const std::uint64_t*>(device),
                     int(n),   field(6), field(5)};
    }
    return batch_view_;
  }

  // Row indices or KV moves for the next kernel.
  const std::int32_t* upload_indices(const std::vector<std::int32_t>& values) {
    const std::size_t bytes = values.size() * sizeof(std::int32_t);
    std::memcpy(staging_.take(bytes), values.data(), bytes);
    void* device = index_memory_.at_least(bytes, stream_);
    staging_.send(device, bytes, stream_);
    return static_cast<const std::int32_t*>(device);
  }

  // RoPE's 1 / theta^(2j / head_dim), formed as the CPU backend forms it, kept per shape.
  const float* inverse_frequencies(int head_dim, float theta) {
    auto [it, fresh] = inv_freq_.try_emplace({head_dim, theta});
    if (fresh) {
      std::vector<float> f(std::size_t(head_dim / 2));
      for (int j = 0; j < head_dim / 2; ++j) f[std::size_t(j)] = 1.0f / std::pow(theta, float(2 * j) / float(head_dim));
      it->second = DeviceMemory(f.size() * sizeof(float));
      check(cudaMemcpy(it->second.data(), f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice), "RoPE frequencies");
    }
    return it->second.as<const float>();
  }

  const int device_;
  std::mutex mutex_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::string name_;
  Scratch half_input_, expanded_weight_, batch_memory_, index_memory_, summary_memory_;
  HostStaging staging_;
  ForwardBatch batch_;  // what batch_view_ describes
  BatchView batch_view_;
  std::map<std::pair<int, float>, DeviceMemory> inv_freq_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) {
  std::string why;
  const int devices = cuda_device_count(&why);
  if (devices == 0) throw Error("--device cuda: no CUDA device is available (" + why + ")");
  if (device < 0 || device >= devices)
    throw Error("--device cuda: no GPU " + std::to_string(device) + " (this machine has " + std::to_string(devices) + ")");
  return std::make_unique<CudaBackend>(device);
}

CudaQueue cuda_queue(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (!cuda) throw Error("the " + backend.name() + " backend is not a CUDA backend");
  return cuda->queue();
}

}  // namespace banyan::gpu
