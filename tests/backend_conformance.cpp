// The backend conformance suite: the same cases for every backend, each operation against a
// plain double-precision reference (weights decoded by weight_format.hpp's decode_row), and
// whole models against the CPU backend. Built once per device (BANYAN_TEST_DEVICE): test_backend_cpu
// always, test_backend_cuda with the CUDA build, which reports "skipped: no CUDA device" where
// there is none.
#define BOOST_TEST_MODULE backend_conformance
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <numeric>
#include <random>
#include <thread>

#include "engine/device_backend.hpp"
#include "engine/engine.hpp"
#include "engine/pipeline_stage.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/llama_model.hpp"
#include "model/random_weights.hpp"
#include "model/sampler.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;
namespace utf = boost::unit_test;

namespace {

const std::string kDevice = BANYAN_TEST_DEVICE;

Backend& backend() {
  static const std::unique_ptr<Backend> b = make_backend(kDevice, 2);
  return *b;
}

struct RequireDevice {
  RequireDevice() {
    try {
      BOOST_TEST_MESSAGE("backend: " << backend().name());
    } catch (const Error& e) {
      if (kDevice == "cuda" && std::string(e.what()).find("no CUDA device") != std::string::npos)
        test::skip_program("no CUDA device (" + std::string(e.what()) + ")");
      throw;
    }
  }
};
BOOST_TEST_GLOBAL_FIXTURE(RequireDevice);

// Cases that compare against the CPU backend mean nothing on it.
boost::test_tools::assertion_result not_the_cpu(utf::test_unit_id) {
  boost::test_tools::assertion_result r(kDevice != "cpu");
  r.message() << "the CPU backend is the reference of this case";
  return r;
}

// An activation matrix on the backend holding `values`.
struct Matrix {
  std::unique_ptr<Buffer> buffer;
  Tensor t;
  Matrix(std::int64_t rows, std::int64_t cols, const std::vector<float>& values = {})
      : buffer(backend().allocate(std::max<std::int64_t>(1, rows * cols))), t(buffer->view(rows, cols)) {
    backend().write(values.empty() ? std::vector<float>(std::size_t(rows * cols)) : values, t);
  }
  std::vector<float> read() const {
    std::vector<float> out(std::size_t(t.rows * t.cols));
    backend().read(t, out);
    return out;
  }
};

struct Weight {
  WeightData data;  // kept for the reference
  std::unique_ptr<DeviceWeight> device;
  Weight(std::int64_t rows, std::int64_t cols, WeightFormat f, std::mt19937& rng, float scale = 0.5f)
      : data(encode(HostTensor{{rows, cols}, test::random_normals(std::size_t(rows * cols), rng, scale)}, f)),
        device(backend().upload(data)) {}
  std::vector<float> row(std::int64_t r) const {
    std::vector<float> out(std::size_t(data.cols));
    decode_row(data, r, out.data());
    return out;
  }
};

// How far a product may be from the exact one, as a share of sum |w * x|: the CPU backend
// multiplies int8/int4 weights with activations rounded to int8; cuBLAS's f16 and bf16 paths
// round them to f16 and bf16.
double product_tolerance(WeightFormat f) {
  switch (f) {
    case WeightFormat::f32: return 3e-5;
    case WeightFormat::f16: return 2e-3;
    case WeightFormat::bf16: return 8e-3;  // cuBLAS rounds the activations to bf16 (8 significant bits)
    default: return 1e-2;
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_cuda_plugin_names_the_device_and_libraries, *utf::precondition(not_the_cpu)) {
  const std::string d = cuda_description();
  BOOST_TEST_MESSAGE(d);
  BOOST_TEST(d.find("cuBLAS") != std::string::npos);
  BOOST_TEST(d.find("NCCL 2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(matmul_matches_the_decoded_weights_in_every_format) {
  std::mt19937 rng(1);
  struct Shape {
    std::int64_t rows, cols;
  };
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4})
    for (Shape s : {Shape{37, 64}, Shape{5, 256}, Shape{64, 96}, Shape{33, 50}}) {
      if (!format_fits(f, s.cols)) continue;
      const Weight w(s.rows, s.cols, f, rng);
      for (std::int64_t tokens : {1, 2, 5, 8, 9, 33}) {
        BOOST_TEST_CONTEXT(format_name(f) << " [" << s.rows << ", " << s.cols << "], " << tokens << " tokens") {
          const auto xv = test::random_normals(std::size_t(tokens * s.cols), rng);
          const Matrix x(tokens, s.cols, xv), out(tokens, s.rows);
          backend().matmul(x.t, *w.device, out.t);
          const auto got = out.read();
          for (std::int64_t r = 0; r < s.rows; ++r) {
            const auto wr = w.row(r);
            for (std::int64_t t = 0; t < tokens; ++t) {
              double exact = 0, magnitude = 0;
              for (std::int64_t c = 0; c < s.cols; ++c) {
                exact += double(wr[std::size_t(c)]) * xv[std::size_t(t * s.cols + c)];
                magnitude += std::abs(double(wr[std::size_t(c)]) * xv[std::size_t(t * s.cols + c)]);
              }
              BOOST_TEST_REQUIRE(std::abs(got[std::size_t(t * s.rows + r)] - exact) <= product_tolerance(f) * magnitude + 1e-6,
                                 "row " << r << ", token " << t << ": " << got[std::size_t(t * s.rows + r)] << " vs " << exact);
            }
          }
        }
      }
    }
}

BOOST_AUTO_TEST_CASE(embedding_rows_are_the_stored_rows) {
  std::mt19937 rng(2);
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4}) {
    const Weight table(50, 64, f, rng);
    ForwardBatch batch;
    for (int token : {0, 49, 7, 7, 23}) batch.add_causal(token, 0, int(batch.size()), false);
    const Matrix out(std::int64_t(batch.size()), 64);
    backend().embed(*table.device, batch, out.t);
    const auto got = out.read();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto expected = table.row(batch.tokens[i]);
      BOOST_TEST(std::vector<float>(got.begin() + std::int64_t(i) * 64, got.begin() + std::int64_t(i + 1) * 64) == expected,
                 boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(rms_norm_matches_the_formula) {
  std::mt19937 rng(3);
  const std::int64_t rows = 3, cols = 100;
  const auto xv = test::random_normals(std::size_t(rows * cols), rng, 3.0f);
  const auto gamma = test::random_normals(std::size_t(cols), rng);
  const auto g = backend().upload(encode(HostTensor{{cols}, gamma}, WeightFormat::f32));
  const Matrix x(rows, cols, xv), out(rows, cols);
  backend().rms_norm(x.t, *g, 1e-5f, out.t);
  const auto got = out.read();
  for (std::int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (std::int64_t c = 0; c < cols; ++c) ss += double(xv[std::size_t(r * cols + c)]) * xv[std::size_t(r * cols + c)];
    const double scale = 1.0 / std::sqrt(ss / double(cols) + 1e-5);
    for (std::int64_t c = 0; c < cols; ++c) {
      const double expected = xv[std::size_t(r * cols + c)] * scale * gamma[std::size_t(c)];
      BOOST_TEST(got[std::size_t(r * cols + c)] == expected, boost::test_tools::tolerance(1e-5));
    }
  }
}

BOOST_AUTO_TEST_CASE(rope_rotates_halves_at_each_position) {
  std::mt19937 rng(4);
  for (int head_dim : {8, 64, 128})
    for (float theta : {10000.0f, 500000.0f}) {
      BOOST_TEST_CONTEXT("head_dim " << head_dim << ", theta " << theta) {
        const int q_heads = 4, k_heads = 2;
        ForwardBatch batch;
        for (int pos : {0, 1, 7, 300, 2047}) batch.add_causal(1, 0, pos, false);
        const std::int64_t n = std::int64_t(batch.size()), qc = q_heads * head_dim, kc = k_heads * head_dim;
        const auto qv = test::random_normals(std::size_t(n * qc), rng), kv = test::random_normals(std::size_t(n * kc), rng);
        const Matrix q(n, qc, qv), k(n, kc, kv);
        backend().rope(q.t, k.t, batch, head_dim, theta);
        const std::vector<float> gq = q.read(), gk = k.read();
        const int half = head_dim / 2;
        auto check = [&](const std::vector<float>& before, const std::vector<float>& after, std::int64_t cols) {
          for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t h = 0; h < cols / head_dim; ++h)
              for (int j = 0; j < half; ++j) {
                // Hugging Face forms the angle in f32: pos * (1 / theta^(2j / d)).
                const float angle = float(batch.positions[std::size_t(i)]) * (1.0f / std::pow(theta, float(2 * j) / float(head_dim)));
                const std::size_t a = std::size_t(i * cols + h * head_dim + j), b = a + std::size_t(half);
                const double c = std::cos(double(angle)), s = std::sin(double(angle));
                BOOST_TEST_REQUIRE(std::abs(after[a] - (before[a] * c - before[b] * s)) < 1e-5);
                BOOST_TEST_REQUIRE(std::abs(after[b] - (before[b] * c + before[a] * s)) < 1e-5);
              }
        };
        check(qv, gq, qc);
        check(kv, gk, kc);
      }
    }
}

namespace {

// A KV cache on the backend and its host mirror; attention's reference reads the mirror. Paged,
// the slots' blocks are handed out shuffled, so no slot's rows lie in order.
class KvCheck {
 public:
  KvCheck(int head_dim, DType dtype, KvPaging paging = {})
      : spec_{2, 3, 64, 2, head_dim, dtype, paging}, kv_(backend().create_kv_cache(spec_)),
        mirror_(std::size_t(spec_.layers * spec_.slots * spec_.capacity * 2),
                std::vector<float>(std::size_t(row()))) {
    if (!paging.on()) return;
    std::vector<std::int32_t> blocks(std::size_t(paging.blocks));
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), std::mt19937(11));
    const int per_slot = spec_.capacity / paging.block_rows;
    BOOST_TEST_REQUIRE(paging.blocks >= spec_.slots * per_slot);
    for (int s = 0; s < spec_.slots; ++s)
      tables_.emplace_back(blocks.begin() + s * per_slot, blocks.begin() + (s + 1) * per_slot);
  }

  int row() const { return spec_.kv_heads * spec_.head_dim; }
  KvCache& kv() { return *kv_; }

  // Runs attention for `batch` on `layer` with random q/k/v; checks every output.
  void attend(int layer, ForwardBatch batch, std::mt19937& rng) {
    if (spec_.paged()) batch.attach_block_tables([&](int slot) { return std::span(tables_[std::size_t(slot)]); });
    const int heads = 4, head_dim = spec_.head_dim;
    const std::int64_t n = std::int64_t(batch.size()), qc = heads * head_dim;
    const auto qv = test::random_normals(std::size_t(n * qc), rng), kv = test::random_normals(std::size_t(n * row()), rng),
               vv = test::random_normals(std::size_t(n * row()), rng);
    const Matrix q(n, qc, qv), k(n, row(), kv), v(n, row(), vv), out(n, qc);
    backend().attention(layer, q.t, k.t, v.t, batch, *kv_, out.t);
    for (std::int64_t i = 0; i < n; ++i)
      for (int e = 0; e < row(); ++e) {
        key(layer, batch.slots[std::size_t(i)], batch.cache_rows[std::size_t(i)])[std::size_t(e)] = stored(kv[std::size_t(i * row() + e)]);
        value(layer, batch.slots[std::size_t(i)], batch.cache_rows[std::size_t(i)])[std::size_t(e)] = stored(vv[std::size_t(i * row() + e)]);
      }
    const auto got = out.read();
    for (std::int64_t i = 0; i < n; ++i) {
      std::vector<int> rows;
      for (int r = 0; r < batch.visible[std::size_t(i)]; ++r) rows.push_back(r);
      for (int j = 0; j < 64; ++j)
        if (batch.tree_masks[std::size_t(i)] >> j & 1) rows.push_back(batch.visible[std::size_t(i)] + j);
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / (heads / spec_.kv_heads);
        std::vector<double> scores;
        double max = -1e300;
        for (int r : rows) {
          double s = 0;
          for (int d = 0; d < head_dim; ++d)
            s += double(qv[std::size_t(i * qc + h * head_dim + d)]) * key(layer, batch.slots[std::size_t(i)], r)[std::size_t(kvh * head_dim + d)];
          scores.push_back(s / std::sqrt(double(head_dim)));
          max = std::max(max, scores.back());
        }
        double total = 0;
        for (auto& s : scores) total += (s = std::exp(s - max));
        for (int d = 0; d < head_dim; ++d) {
          double expected = 0;
          for (std::size_t j = 0; j < rows.size(); ++j)
            expected += scores[j] / total * value(layer, batch.slots[std::size_t(i)], rows[j])[std::size_t(kvh * head_dim + d)];
          BOOST_TEST_REQUIRE(std::abs(got[std::size_t(i * qc + h * head_dim + d)] - expected) < 2e-5,
                             "token " << i << ", head " << h << ", dim " << d << ": " << got[std::size_t(i * qc + h * head_dim + d)]
                                      << " vs " << expected);
        }
      }
    }
  }

  void move_rows(int slot, const std::vector<std::pair<int, int>>& moves) {
    const KvRowMap map = kv_row_map(spec_, slot, spec_.paged() ? std::span(tables_[std::size_t(slot)]) : std::span<const std::int32_t>());
    std::vector<std::pair<std::int64_t, std::int64_t>> cache_rows;
    for (const auto& [from, to] : moves) cache_rows.emplace_back(map.row(from), map.row(to));
    backend().copy_kv_rows(*kv_, cache_rows);
    for (int layer = 0; layer < spec_.layers; ++layer)
      for (const auto& [from, to] : moves) {
        key(layer, slot, to) = key(layer, slot, from);
        value(layer, slot, to) = value(layer, slot, from);
      }
  }

 private:
  float stored(float x) const {
    switch (spec_.dtype) {
      case DType::f16: return f16_to_f32(f32_to_f16(x));
      case DType::bf16: return bf16_to_f32(f32_to_bf16(x));
      default: return x;
    }
  }
  std::vector<float>& key(int layer, int slot, int r) { return mirror_[index(layer, slot, r) * 2]; }
  std::vector<float>& value(int layer, int slot, int r) { return mirror_[index(layer, slot, r) * 2 + 1]; }
  std::size_t index(int layer, int slot, int r) const {
    return std::size_t((layer * spec_.slots + slot) * spec_.capacity + r);
  }

  KvCacheSpec spec_;
  std::unique_ptr<KvCache> kv_;
  std::vector<std::vector<float>> mirror_;  // [layer][slot][row][key, value]
  std::vector<std::vector<std::int32_t>> tables_;  // paged: each slot's blocks
};

}  // namespace

BOOST_AUTO_TEST_CASE(attention_honours_causal_and_tree_masks_and_row_moves) {
  std::mt19937 rng(5);
  // The fixed layout, then paged caches: blocks of 4 rows (a prefill spans three, a tree
  // straddles two), and of 1 row.
  for (KvPaging paging : {KvPaging{}, KvPaging{4, 50}, KvPaging{1, 200}})
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (int head_dim : {8, 64, 128}) {
      BOOST_TEST_CONTEXT("KV " << dtype_name(dtype) << ", head_dim " << head_dim << ", blocks of " << paging.block_rows) {
        KvCheck c(head_dim, dtype, paging);
        // Prefill: 10 prompt tokens of slot 1 and 50 of slot 2 (more rows than a GPU block's
        // warps read at once) in one batch, both layers.
        ForwardBatch prefill;
        for (int p = 0; p < 10; ++p) prefill.add_causal(1, 1, p, false);
        for (int p = 0; p < 50; ++p) prefill.add_causal(1, 2, p, false);
        for (int layer : {0, 1}) c.attend(layer, prefill, rng);
        // A token tree after slot 1's prefix (rows 10..14: 10 <- 11, 10 <- 12 <- 13, 12 <- 14),
        // beside a decoding token of slot 2 and a tree on slot 0's empty prefix.
        ForwardBatch tree;
        auto add_tree = [&](int slot, int row, int visible, std::uint64_t mask) {
          tree.tokens.push_back(1);
          tree.positions.push_back(row);
          tree.slots.push_back(slot);
          tree.cache_rows.push_back(row);
          tree.visible.push_back(visible);
          tree.tree_masks.push_back(mask);
        };
        add_tree(1, 10, 10, 0b00001);
        add_tree(1, 11, 10, 0b00011);
        add_tree(1, 12, 10, 0b00101);
        add_tree(1, 13, 10, 0b01101);
        add_tree(1, 14, 10, 0b10101);
        tree.add_causal(1, 2, 50, false);
        add_tree(0, 0, 0, 0b1);
        add_tree(0, 1, 0, 0b11);
        for (int layer : {0, 1}) c.attend(layer, tree, rng);
        // Accept 10 -> 12 -> 13: rows 12, 13 move to 11, 12 — in order, 13 after 12 was read.
        c.move_rows(1, {{12, 11}, {13, 12}});
        ForwardBatch next;
        next.add_causal(1, 1, 13, false);
        for (int layer : {0, 1}) c.attend(layer, next, rng);
      }
    }
}

BOOST_AUTO_TEST_CASE(row_operations_and_transfers) {
  std::mt19937 rng(6);
  const std::int64_t rows = 5, cols = 70;
  const auto a = test::random_normals(std::size_t(rows * cols), rng, 4.0f), b = test::random_normals(std::size_t(rows * cols), rng);
  {
    const Matrix x(rows, cols, a);
    BOOST_TEST(x.read() == a, boost::test_tools::per_element());  // write, then read, exactly
    const Matrix y(rows, cols, b);
    backend().add(x.t, y.t);
    const auto got = x.read();
    for (std::size_t i = 0; i < a.size(); ++i) BOOST_TEST_REQUIRE(got[i] == a[i] + b[i]);
  }
  {
    const Matrix gate(rows, cols, a), up(rows, cols, b);
    backend().silu_mul(gate.t, up.t);
    const auto got = gate.read();
    for (std::size_t i = 0; i < a.size(); ++i)
      BOOST_TEST_REQUIRE(std::abs(got[i] - a[i] / (1.0 + std::exp(-double(a[i]))) * b[i]) <= 1e-5 * (1 + std::abs(got[i])));
  }
  {
    const Matrix x(rows, cols, a), out(3, cols);
    const std::vector<std::int32_t> pick = {4, 0, 4};
    backend().gather_rows(x.t, pick, out.t);
    const auto got = out.read();
    for (std::size_t j = 0; j < pick.size(); ++j)
      for (std::int64_t c = 0; c < cols; ++c)
        BOOST_TEST_REQUIRE(got[j * std::size_t(cols) + std::size_t(c)] == a[std::size_t(pick[j] * cols + c)]);
  }
}

BOOST_AUTO_TEST_CASE(logit_summaries_are_the_hosts) {
  // LLaMA's vocabulary and a small one; ties at the top and among the runners-up (a row of few
  // distinct values), as quantized models make them.
  std::mt19937 rng(8);
  for (const int vocab : {32000, 7}) {
    const int rows = 5;
    auto logits = test::random_normals(std::size_t(rows * vocab), rng, 3.0f);
    for (int c = 0; c < vocab; ++c) logits[std::size_t(vocab + c)] = float(c % 3);
    logits[std::size_t(2 * vocab + vocab - 1)] = logits[std::size_t(2 * vocab)] = 50.0f;
    const Matrix x(rows, vocab, logits);
    for (const int k : {1, 4, std::min(vocab, kMaxSummaryTokens)}) {
      BOOST_TEST_CONTEXT("vocabulary " << vocab << ", k " << k) {
        std::vector<float> got(std::size_t(rows * summary_width(k))), want(got.size());
        // Rows sampled from a nucleus have their weight at their temperature formed too.
        const std::vector<float> temperatures = {0.0f, 0.7f, 1.3f, 0.0f, 2.0f};
        backend().summarise_logits(x.t, k, temperatures, got);
        summarise_logits(logits, vocab, k, temperatures, want);
        const LogitRows g(got, vocab, k), w(want, vocab, k);
        for (std::size_t r = 0; r < std::size_t(rows); ++r) {
          const float weight = got[r * std::size_t(summary_width(k)) + std::size_t(2 * k + 1)];
          const float wanted = want[r * std::size_t(summary_width(k)) + std::size_t(2 * k + 1)];
          if (temperatures[r] > 0)
            BOOST_TEST(std::abs(double(weight) - double(wanted)) <= 1e-5 * std::abs(double(wanted)) + 1e-5);
          else
            BOOST_TEST((std::isnan(weight) && std::isnan(wanted)));
          const TopLogits a = g.top(r, k), b = w.top(r, k);
          BOOST_TEST(a.tokens == b.tokens, boost::test_tools::per_element());
          BOOST_TEST(a.logits == b.logits, boost::test_tools::per_element());
          if (k == 1)
            BOOST_TEST((std::isnan(a.log_z) && std::isnan(b.log_z)));  // an argmax: no normaliser
          else
            BOOST_TEST(std::abs(double(a.log_z) - double(b.log_z)) <= 1e-5 * std::abs(double(b.log_z)) + 1e-6);
        }
      }
    }
  }
}

namespace {

// tiny-llama's layout (4 heads, 2 of keys and values, 2 layers) with heads of 32.
LlamaConfig conformance_config() {
  LlamaConfig c = test::tiny_llama_config();
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.vocab_size = 256;
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(model_logits_match_the_cpu_backend, *utf::precondition(not_the_cpu)) {
  const RandomWeights weights(conformance_config(), 11);
  const auto cpu = make_backend("cpu", 2);
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4}) {
    BOOST_TEST_CONTEXT(format_name(f)) {
      ModelOptions o;
      o.linear = f;
      LlamaModel here(weights, backend(), o), there(weights, *cpu, o);
      auto kv_here = here.create_kv_cache({1, 64}), kv_there = there.create_kv_cache({1, 64});
      ForwardBatch batch;
      for (int p = 0; p < 12; ++p) batch.add_causal(3 + p * 7, 0, p, true);
      const double tolerance = f == WeightFormat::f32 ? 1e-4 : 3e-2;
      for (int step = 0; step < 6; ++step) {
        std::vector<float> a, b;
        here.forward(batch, *kv_here, a);
        there.forward(batch, *kv_there, b);
        BOOST_TEST_REQUIRE(a.size() == b.size());
        double largest = 0, worst = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
          largest = std::max(largest, std::abs(double(b[i])));
          worst = std::max(worst, std::abs(double(a[i]) - b[i]));
        }
        BOOST_TEST_REQUIRE(worst <= tolerance * largest, "step " << step << ": logits differ by " << worst << " of " << largest);
        // The next token is the CPU's greedy choice, so both decode the same sequence.
        auto last_argmax = [](const std::vector<float>& logits) {
          return argmax(std::span(logits).last(std::size_t(conformance_config().vocab_size)));
        };
        const int next = last_argmax(b);
        if (f == WeightFormat::f32) BOOST_TEST(last_argmax(a) == next);
        const int position = batch.positions.back() + 1;
        batch = ForwardBatch();
        batch.add_causal(next, 0, position, true);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(tensor_shards_held_side_by_side_compute_the_whole_models_logits) {
  // Two shards as `banyan` holds them in one process (make_shard_backends): on the CPU summing in
  // shared memory; on CUDA a GPU each through NCCL where there are two, else both on GPU 0.
  const RandomWeights weights(conformance_config(), 31);
  ShardBackends shards = make_shard_backends(kDevice, 2, 2);
  BOOST_TEST_MESSAGE(shards.description);
  auto split = sharded_stage(shards.collectives(), [&](TensorShard s) {
    return std::make_shared<LlamaModel>(weights, *shards.backends[std::size_t(s.rank)], ModelOptions{.shard = s});
  });
  LlamaModel whole(weights, backend());
  auto kv = whole.create_kv_cache({1, 64});
  split->create_kv_cache({1, 64});
  ForwardBatch prompt;
  for (int p = 0; p < 9; ++p) prompt.add_causal(3 + p * 11, 0, p, true);
  ForwardBatch step;
  step.add_causal(7, 0, 9, true);
  for (const ForwardBatch& b : {prompt, step}) {  // the step reads the cache the prompt filled
    std::vector<float> expected, got;
    whole.forward(b, *kv, expected);
    split->forward(b, {}, got);
    BOOST_TEST_REQUIRE(got.size() == expected.size());
    double largest = 0, worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      largest = std::max(largest, std::abs(double(expected[i])));
      worst = std::max(worst, std::abs(double(got[i]) - expected[i]));
    }
    BOOST_TEST(worst <= 1e-4 * largest, "logits differ by " << worst << " of " << largest);
  }
  BOOST_TEST(split->shard(0).collective_stats().calls == 2 * 2 * std::uint64_t(conformance_config().num_hidden_layers));
}

BOOST_AUTO_TEST_CASE(an_nccl_group_sums_in_device_memory, *utf::precondition(not_the_cpu)) {
  // Every GPU here in one group, each rank holding rank + 1 times the same values: the sum is
  // (1 + ... + n) times them, on the device and through host memory alike. One GPU makes a group
  // of one (NCCL takes one GPU per rank), which still runs NCCL's whole path.
  const int gpus = cuda_device_count();
  std::vector<std::unique_ptr<Backend>> devices;
  std::vector<Backend*> on;
  for (int g = 0; g < gpus; ++g) on.push_back((devices.emplace_back(make_backend(kDevice, 1, g))).get());
  const auto ranks = nccl_all_reduce(on);
  std::mt19937 rng(12);
  const auto values = test::random_normals(3 * 130, rng);
  auto times = [&](int r) {
    std::vector<float> v(values);
    for (float& x : v) x *= float(r + 1);
    return v;
  };
  std::vector<std::thread> threads;
  const auto n = static_cast<std::size_t>(gpus);
  std::vector<std::vector<float>> on_device(n, std::vector<float>(values.size())), on_host(n);
  for (int r = 0; r < gpus; ++r)
    threads.emplace_back([&, r] {
      Backend& b = *on[std::size_t(r)];
      auto buffer = b.allocate(std::int64_t(values.size()));
      const Tensor t = buffer->view(3, 130);
      b.write(times(r), t);
      ranks[std::size_t(r)]->all_reduce_tensor(b, t);
      b.read(t, on_device[std::size_t(r)]);
      on_host[std::size_t(r)] = times(r);
      ranks[std::size_t(r)]->all_reduce_sum(on_host[std::size_t(r)]);
    });
  for (auto& t : threads) t.join();
  const float factor = float(gpus * (gpus + 1) / 2);
  for (int r = 0; r < gpus; ++r)
    for (std::size_t i = 0; i < values.size(); ++i) {
      BOOST_TEST_REQUIRE(std::abs(on_device[std::size_t(r)][i] - factor * values[i]) <= 1e-5f * (1 + std::abs(values[i])));
      BOOST_TEST_REQUIRE(on_host[std::size_t(r)][i] == on_device[std::size_t(r)][i]);
    }
  const CollectiveStats stats = ranks.front()->stats();
  BOOST_TEST(stats.calls == 2u);
  BOOST_TEST(stats.bytes == 2 * values.size() * sizeof(float));
  BOOST_TEST(stats.seconds > 0.0);
}

BOOST_AUTO_TEST_CASE(greedy_speculative_output_equals_incremental) {
  const RandomWeights llm_weights(conformance_config(), 21);
  LlamaConfig small = conformance_config();
  small.num_hidden_layers = 1;
  const RandomWeights ssm_weights(small, 22);
  LlamaModel llm(llm_weights, backend()), ssm(ssm_weights, backend());
  std::vector<std::vector<std::int32_t>> prompts = {{1, 5, 9}, {1, 200}, {1, 17, 4, 99, 31}};
  auto run = [&](std::vector<LlamaModel*> ssms) {
    EngineOptions o;
    o.limits.max_requests_per_batch = 3;
    o.tree = {2, 4};
    Engine engine(llm, std::move(ssms), o);
    std::vector<RequestId> ids;
    for (const auto& p : prompts) ids.push_back(engine.submit(p, GenerationConfig{24, {}}));
    engine.run([](RequestId, std::span<const std::int32_t>) {});
    std::vector<std::vector<std::int32_t>> out;
    for (auto id : ids) out.push_back(engine.requests().request(id).tokens);
    return out;
  };
  const auto incremental = run({});
  BOOST_TEST((run({&ssm}) == incremental));
  BOOST_TEST((run({&llm}) == incremental));  // every token accepted
}

BOOST_AUTO_TEST_CASE(an_offloaded_model_computes_what_the_resident_one_does) {
  // Under 40% of its weights, each pass streams most layers and the classifier in (on the CPU by
  // paging the file, on a GPU by copies into device slots) while the embedding is read where it
  // lies. The same kernels read the same bytes: logits equal the resident model's bit for bit,
  // and greedy output, incremental or speculative, is the same.
  LlamaConfig c = conformance_config();
  c.num_hidden_layers = 6;
  c.tie_word_embeddings = false;
  test::TempDir dir;
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::q4}) {
    BOOST_TEST_CONTEXT(format_name(f)) {
      const auto file = dir / (std::string(format_name(f)) + ".banyan");
      write_converted(EncodedWeights(RandomWeights(c, 31), {f, DType::f32}), file);
      auto source = open_converted(file);
      LlamaModel resident(*source, backend());
      LlamaModel offloaded(*source, backend(), {.offload = true});
      const std::size_t budget = resident.weight_bytes() * 2 / 5;
      const auto paging = page_models({&offloaded}, {.budget = budget});

      auto kv_resident = resident.create_kv_cache({1, 32}), kv_offloaded = offloaded.create_kv_cache({1, 32});
      ForwardBatch batch;
      for (int p = 0; p < 9; ++p) batch.add_causal(5 + p * 11, 0, p, true);
      for (int step = 0; step < 4; ++step) {
        std::vector<float> want, got;
        resident.forward(batch, *kv_resident, want);
        offloaded.forward(batch, *kv_offloaded, got);
        BOOST_TEST_REQUIRE((got == want), "step " << step);
        const int position = batch.positions.back() + 1;
        batch = ForwardBatch();
        batch.add_causal(argmax(std::span(want).last(std::size_t(c.vocab_size))), 0, position, true);
      }

      LlamaConfig small = c;
      small.num_hidden_layers = 1;
      const RandomWeights ssm_weights(small, 32);
      LlamaModel ssm(ssm_weights, backend());
      auto generate = [&](LlamaModel& llm, std::vector<LlamaModel*> ssms) {
        Engine engine(llm, std::move(ssms), {});
        std::vector<RequestId> ids;
        for (const auto& p : {std::vector<std::int32_t>{1, 5, 9}, {1, 200, 3, 3}}) ids.push_back(engine.submit(p, {16, {}}));
        engine.run([](RequestId, std::span<const std::int32_t>) {});
        std::vector<std::vector<std::int32_t>> out;
        for (auto id : ids) out.push_back(engine.requests().request(id).tokens);
        return out;
      };
      const auto want = generate(resident, {});
      BOOST_TEST((generate(offloaded, {}) == want));
      BOOST_TEST((generate(offloaded, {&ssm}) == want));

      const OffloadStats s = paging->stats();
      BOOST_TEST(s.resident_bytes + s.reserve_bytes <= budget);
      BOOST_TEST(s.streamed_bytes > 8 * (s.disk_bytes - s.resident_bytes));  // the rest, at every step
      // A GPU keeps what streams, and the embedding, in pinned host memory; a CPU pages the file.
      if (kDevice == "cuda") BOOST_TEST(s.host_bytes >= s.disk_bytes - s.resident_bytes);
      else BOOST_TEST(s.host_bytes == 0u);
    }
  }
}
