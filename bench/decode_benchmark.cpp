// bench decode: prompt and decode speed of the CPU (or CUDA) backend for the llama-68m,
// llama-160m and TinyLlama-1.1B shapes (random weights) in every weight format, against the
// machine's own memory read bandwidth (decode streams every weight once per step; on CUDA the
// device's) and OpenBLAS sgemm speed (prefill is matrix-matrix work), measured in the same run.
#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "cli/option_types.hpp"
#include "cpu/cpu_backend.hpp"
#include "engine/device_backend.hpp"
#include "model/llama_model.hpp"
#include "model/random_weights.hpp"
#include "model/sampler.hpp"

namespace banyan::bench {

namespace {

LlamaConfig shape_named(const std::string& name) {
  if (name == "llama-68m") return llama_68m_shape();
  if (name == "llama-160m") return llama_160m_shape();
  if (name == "tinyllama-1.1b") return tinyllama_1b_shape();
  throw cli::UsageError("unknown model shape '" + name + "' (llama-68m, llama-160m, tinyllama-1.1b)");
}

// Threads that keep the cores busy while they live: what a server's other threads (network,
// actors) do to the compute pool when they run at the same time.
class BusyThreads {
 public:
  explicit BusyThreads(int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        volatile std::uint64_t spins = 0;
        while (!stop_.load(std::memory_order_relaxed)) spins = spins + 1;
      });
  }
  ~BusyThreads() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

struct Measured {
  double prompt_tokens_per_s = 0, decode_tokens_per_s = 0, batch_tokens_per_s = 0;
  std::size_t kv_bytes = 0;
};

// Prefill `prompt` tokens in one pass, decode `steps` tokens one at a time, then decode `steps`
// steps of `batch` sequences at once. With block_rows, in a paged KV cache whose sequences'
// blocks interleave (sequence s's j-th block is j * batch + s), as a server's pool hands them
// out to sequences that grow together.
Measured measure(LlamaModel& model, int prompt, int steps, int batch, int block_rows) {
  const int vocab = model.config().vocab_size;
  Rng rng(7);
  auto token = [&] { return std::int32_t(3 + rng.next() % std::uint64_t(vocab - 3)); };
  KvLayout layout{batch, prompt + steps + 32, {}};
  std::vector<std::vector<std::int32_t>> tables(static_cast<std::size_t>(batch));
  if (block_rows > 0) {
    const int per_sequence = (layout.capacity + block_rows - 1) / block_rows;
    layout.paging = {block_rows, per_sequence * batch};
    for (int s = 0; s < batch; ++s)
      for (int j = 0; j < per_sequence; ++j) tables[std::size_t(s)].push_back(j * batch + s);
  }
  auto kv = model.create_kv_cache(layout);
  std::vector<float> logits;
  auto forward = [&](ForwardBatch& b) {
    if (block_rows > 0) b.attach_block_tables([&](int slot) { return std::span(tables[std::size_t(slot)]); });
    model.forward(b, *kv, logits);
  };
  Measured m;
  m.kv_bytes = kv->bytes();

  ForwardBatch warm;  // first use allocates the workspaces
  for (int i = 0; i < 16; ++i) warm.add_causal(token(), 0, i, i == 15);
  forward(warm);

  ForwardBatch pre;
  for (int i = 0; i < prompt; ++i) pre.add_causal(token(), 0, i, i + 1 == prompt);
  Stopwatch prefill;
  forward(pre);
  m.prompt_tokens_per_s = prompt / prefill.seconds();

  Stopwatch decode;
  std::int32_t next = argmax(logits);
  for (int s = 0; s < steps; ++s) {
    ForwardBatch b;
    b.add_causal(next, 0, prompt + s, true);
    forward(b);
    next = argmax(logits);
  }
  m.decode_tokens_per_s = steps / decode.seconds();

  constexpr int kShortPrompt = 16;
  ForwardBatch starts;
  for (int slot = 0; slot < batch; ++slot)
    for (int i = 0; i < kShortPrompt; ++i) starts.add_causal(token(), slot, i, i + 1 == kShortPrompt);
  forward(starts);
  Stopwatch batched;
  for (int s = 0; s < steps; ++s) {
    ForwardBatch b;
    for (int slot = 0; slot < batch; ++slot)
      b.add_causal(argmax({logits.data() + std::size_t(slot) * std::size_t(vocab), std::size_t(vocab)}), slot,
                   kShortPrompt + s, true);
    forward(b);
  }
  m.batch_tokens_per_s = double(batch) * steps / batched.seconds();
  return m;
}

// Multiply-adds of one prefill pass: the layers' matrices for every token, attention's QK and PV
// over the causal triangle, the classifier for the last token.
double prefill_flops(const LlamaConfig& c, int tokens) {
  const double dim = c.hidden_size, kv = c.kv_dim(), inter = c.intermediate_size, n = tokens;
  const double per_layer = 2 * dim * dim + 2 * dim * kv + 3 * dim * inter;
  return 2 * n * per_layer * c.num_hidden_layers + 2 * n * n * dim * c.num_hidden_layers +
         2 * dim * double(c.vocab_size);
}

}  // namespace

int decode_benchmark(int argc, char** argv) {
  cli::Options o("bench decode", "[options]",
                 "Measures prompt and decode tokens/s of the CPU or CUDA backend on random-weight models, with\n"
                 "the weight-streaming GB/s of each decode row as a fraction of the measured read bandwidth\n"
                 "(the machine's, read right before and after each row as well as once at the start, or with\n"
                 "--device cuda the GPU's).");
  o.add("--device", "cpu|cuda", "the backend measured", "cpu");
  o.add("--models", "LIST", "model shapes: llama-68m, llama-160m, tinyllama-1.1b", "llama-68m,llama-160m,tinyllama-1.1b");
  o.add("--dtypes", "LIST", "weight formats", "f32,f16,int8,int4");
  o.add("--threads", "LIST", "thread counts (CPU)", "1,2");
  o.add("--prompt-tokens", "N", "tokens in the prefill pass", "512");
  o.add("--decode-tokens", "N", "decoding steps", "128");
  o.add("--batch", "N", "sequences in the batched decode rows", "8");
  o.add("--kv-dtype", "f32|f16|bf16", "element type of the KV cache", "f32");
  o.add("--kv-block-rows", "N", "a paged KV cache in blocks of N rows, the sequences' blocks interleaved (0: not paged)",
        "0");
  o.add("--spin-us", "US", "thread pool spin before sleeping", "100");
  o.add("--busy-threads", "N", "threads spinning beside the measured ones, as a server's other threads would", "0");
  o.add("--out", "FILE", "JSON result file", "bench-decode.json");
  o.flag("--no-baselines", "skip the bandwidth and sgemm baselines (keeps peak RSS to the models alone)");
  if (!o.parse(argc, argv)) return 0;
  const int prompt = o.integer("--prompt-tokens"), steps = o.integer("--decode-tokens"), batch = o.integer("--batch");
  const int block_rows = o.integer("--kv-block-rows");
  if (prompt < 1 || steps < 1 || batch < 1) throw cli::UsageError("token counts and --batch must be positive");
  if (block_rows < 0) throw cli::UsageError("--kv-block-rows must be 0 (not paged) or positive");
  const bool cuda = cli::device_option(o) == "cuda";

  nlohmann::json result;
  result["machine"] = machine_description();
  result["device"] = cuda ? cuda_description() : "cpu";
  result["busy_threads"] = o.integer("--busy-threads");
  double stream = 0, sgemm = 0;
  if (cuda) {
    make_backend("cuda", 0);  // says clearly when there is no device, before anything is measured
    std::printf("device: %s\n", cuda_description().c_str());
    if (!o.has("--no-baselines")) {
      stream = cuda_read_gb_per_s();
      std::printf("baseline: device memory read %.0f GB/s\n", stream);
      result["stream_read_gb_per_s"] = stream;
    }
  } else if (!o.has("--no-baselines")) {
    stream = stream_read_gb_per_s(2);
    sgemm = sgemm_gflops(2, 512, 2048, 2048);
    std::printf("baselines: memory read %.1f GB/s (2 threads), OpenBLAS sgemm %.0f GFLOP/s (2 threads, 512x2048x2048)\n",
                stream, sgemm);
    result["stream_read_gb_per_s"] = stream;
    result["sgemm_gflops"] = sgemm;
  }
  // %BW: of the reads measured around the row (row read GB/s); %first: of the first baseline.
  std::printf("%-15s %-5s %3s %5s | %11s %8s | %11s %9s %9s %8s %8s\n", "model", "dtype", "thr", "batch", "prompt tok/s",
              "%sgemm", "decode tok/s", "weight GB/s", "row read", "%BW", "%first");
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& model_name : o.list("--models")) {
    const LlamaConfig shape = shape_named(model_name);
    const RandomWeights random(shape, 1);
    for (const auto& dtype_name : o.list("--dtypes")) {
      const ModelOptions options{cli::parse_format_value("--dtypes", dtype_name),
                                 cli::parse_kv_dtype_value("--kv-dtype", o.text("--kv-dtype"))};
      const EncodedWeights weights(random, options);  // encoded once, shared by every thread count
      for (const auto& threads_text : cuda ? std::vector<std::string>{"0"} : o.list("--threads")) {
        const int threads = std::stoi(threads_text);
        auto backend = cuda ? make_backend("cuda", 0) : cpu::make_cpu_backend({threads, o.integer("--spin-us")});
        LlamaModel model(weights, *backend, options);
        // This host's read bandwidth drifts by a third within minutes, so each row is also set
        // against reads measured right before and after it (CUDA keeps its one baseline).
        auto reads_now = [&] { return stream > 0 && !cuda ? stream_read_gb_per_s(2) : stream; };
        const double before = reads_now();
        const Measured m = [&] {
          const BusyThreads busy(o.integer("--busy-threads"));
          return measure(model, prompt, steps, batch, block_rows);
        }();
        const double row_stream = (before + reads_now()) / 2;
        const double bytes = double(model.decode_bytes());
        const double prompt_gflops = prefill_flops(shape, prompt) * m.prompt_tokens_per_s / prompt / 1e9;
        for (const auto& [b, tps] : {std::pair{1, m.decode_tokens_per_s}, std::pair{batch, m.batch_tokens_per_s}}) {
          const double gbps = bytes * tps / b / 1e9;
          const double fraction = row_stream > 0 ? gbps / row_stream : 0;
          std::printf("%-15s %-5s %3d %5d | %11.1f %7.0f%% | %11.1f %9.2f %9.1f %7.0f%% %7.0f%%\n", model_name.c_str(),
                      dtype_name.c_str(), threads, b, m.prompt_tokens_per_s, sgemm > 0 ? 100 * prompt_gflops / sgemm : 0.0,
                      tps, gbps, row_stream, 100 * fraction, stream > 0 ? 100 * gbps / stream : 0.0);
          rows.push_back({{"model", model_name},
                          {"dtype", dtype_name},
                          {"threads", threads},
                          {"batch", b},
                          {"prompt_tokens_per_s", m.prompt_tokens_per_s},
                          {"prompt_gflops", prompt_gflops},
                          {"decode_tokens_per_s", tps},
                          {"weight_bytes_per_step", bytes},
                          {"model_weight_bytes", model.weight_bytes()},
                          {"kv_cache_bytes", m.kv_bytes},
                          {"kv_dtype", o.text("--kv-dtype")},
                          {"kv_block_rows", block_rows},
                          {"weight_gb_per_s", gbps},
                          {"row_stream_read_gb_per_s", row_stream},
                          {"bandwidth_fraction", fraction},
                          {"first_baseline_fraction", stream > 0 ? gbps / stream : 0}});
        }
        std::fflush(stdout);
      }
    }
  }
  result["rows"] = rows;
  result["peak_rss_bytes"] = cli::peak_rss_bytes();
  write_json(o.text("--out"), result);
  return 0;
}

}  // namespace banyan::bench
