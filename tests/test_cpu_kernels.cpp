// Every CPU kernel set (portable, AVX2, AVX-512, as far as this CPU has them) against plain
// references, on random shapes including odd sizes; quantization round trips; the matmul driver
// in all formats, both paths (dot products and expand + sgemm), several thread counts.
#define BOOST_TEST_MODULE test_cpu_kernels
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>

#include "cpu/matmul.hpp"
#include "cpu/simd_kernels.hpp"
#include "cpu/thread_pool.hpp"
#include "model/weight_format.hpp"
#include "tests/support/test_support.hpp"

using namespace banyan;
using namespace banyan::cpu;

namespace {

std::vector<const KernelSet*> kernel_sets() {
  std::vector<const KernelSet*> sets = {&portable_kernels()};
  // The SIMD sets are only run where the CPU has their instructions (best_kernels() knows).
  const std::string best = best_kernels().name;
  if (best == "avx512" || best == "avx2") sets.push_back(avx2_kernels());
  if (best == "avx512") sets.push_back(avx512_kernels());
  return sets;
}

HostTensor random_matrix(std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  return {{rows, cols}, test::random_normals(std::size_t(rows * cols), rng)};
}

}  // namespace

// Float dot kernels take 1..kDotWeightRows weight rows and 1..kMaxFloatDotRows activation rows;
// every pair must come out as if alone.
BOOST_AUTO_TEST_CASE(float_dots_match_double_precision) {
  std::mt19937 rng(1);
  for (const KernelSet* ks : kernel_sets())
    for (std::int64_t k : {1, 7, 15, 16, 17, 31, 33, 64, 100, 257, 1000}) {
      const std::int64_t w_stride = k + 3;  // rows apart by more than their length, as column slices are
      const auto w = test::random_normals(std::size_t(w_stride * kDotWeightRows), rng),
                 x = test::random_normals(std::size_t(k * kMaxFloatDotRows), rng);
      std::vector<std::uint16_t> h(w.size());
      for (std::size_t i = 0; i < h.size(); ++i) h[i] = f32_to_f16(w[i]);
      for (int n = 1; n <= kDotWeightRows; ++n)
        for (int m = 1; m <= kMaxFloatDotRows; ++m) {
          float got32[kDotWeightRows * kMaxFloatDotRows], got16[kDotWeightRows * kMaxFloatDotRows];
          ks->dot_f32(w.data(), w_stride, n, x.data(), k, k, m, got32);
          ks->dot_f16(h.data(), w_stride, n, x.data(), k, k, m, got16);
          for (int r = 0; r < n; ++r)
            for (int t = 0; t < m; ++t) {
              double ref32 = 0, ref16 = 0, mag = 0;
              for (std::int64_t i = 0; i < k; ++i) {
                const double xi = x[std::size_t(t * k + i)];
                const std::size_t wi = std::size_t(r * w_stride + i);
                ref32 += double(w[wi]) * xi;
                ref16 += double(f16_to_f32(h[wi])) * xi;
                mag += std::abs(double(w[wi]) * xi);
              }
              BOOST_TEST_CONTEXT(ks->name << " k=" << k << " n=" << n << " m=" << m << " weight row " << r << " row " << t) {
                BOOST_TEST(std::abs(got32[r * m + t] - ref32) <= 1e-5 * mag + 1e-6);
                BOOST_TEST(std::abs(got16[r * m + t] - ref16) <= 1e-5 * mag + 1e-6);
              }
            }
        }
      std::vector<float> out(static_cast<std::size_t>(k));
      ks->expand_f16(h.data(), k, out.data());
      for (std::int64_t i = 0; i < k; ++i) BOOST_TEST_REQUIRE(out[std::size_t(i)] == f16_to_f32(h[std::size_t(i)]));
    }
}

BOOST_AUTO_TEST_CASE(quantized_kernels_agree_with_the_portable_reference) {
  std::mt19937 rng(2);
  const KernelSet& ref = portable_kernels();
  for (const KernelSet* ks : kernel_sets())
    for (std::int64_t k : {32, 64, 96, 160, 224, 544, 768, 800, 2048, 5632}) {
      const std::int64_t g = k / 32;
      const auto x = test::random_normals(std::size_t(k * kMaxDotRows), rng, 3.0f);
      auto bytes = [](std::int64_t n) { return std::vector<std::int8_t>(static_cast<std::size_t>(n)); };
      auto floats = [](std::int64_t n) { return std::vector<float>(static_cast<std::size_t>(n)); };
      auto qa = bytes(k * kMaxDotRows), qa_ref = bytes(k * kMaxDotRows), qa4 = bytes(k * kMaxDotRows);
      auto sa = floats(g * kMaxDotRows), ca = floats(g * kMaxDotRows), sa_ref = floats(g * kMaxDotRows),
           ca_ref = floats(g * kMaxDotRows), sa4 = floats(g * kMaxDotRows), ca4 = floats(g * kMaxDotRows);
      for (int t = 0; t < kMaxDotRows; ++t) {
        ks->quantize_row(x.data() + t * k, k, qa.data() + t * k, sa.data() + t * g, ca.data() + t * g, false);
        ref.quantize_row(x.data() + t * k, k, qa_ref.data() + t * k, sa_ref.data() + t * g, ca_ref.data() + t * g, false);
        // The q4 order is the set's own business; only its dot products are compared below.
        ks->quantize_row(x.data() + t * k, k, qa4.data() + t * k, sa4.data() + t * g, ca4.data() + t * g, true);
      }
      BOOST_TEST_CONTEXT(ks->name << " k=" << k) {
        BOOST_TEST(qa == qa_ref, boost::test_tools::per_element());
        BOOST_TEST(sa == sa_ref, boost::test_tools::per_element());
        for (std::size_t i = 0; i < ca.size(); ++i) BOOST_TEST(ca[i] == ca_ref[i], boost::test_tools::tolerance(1e-6f));

        for (WeightFormat f : {WeightFormat::q8, WeightFormat::q4}) {
          const WeightData w = encode(random_matrix(1, k, rng), f);
          std::vector<float> expanded(static_cast<std::size_t>(k)), decoded(static_cast<std::size_t>(k));
          decode_row(w, 0, decoded.data());
          for (int m = 1; m <= kMaxDotRows; ++m) {
            float got[kMaxDotRows], want[kMaxDotRows];
            if (f == WeightFormat::q8) {
              const auto* q = reinterpret_cast<const std::int8_t*>(w.quants());
              ks->dot_q8(q, w.scales(), qa.data(), sa.data(), ca.data(), k, m, got);
              ref.dot_q8(q, w.scales(), qa_ref.data(), sa_ref.data(), ca_ref.data(), k, m, want);
            } else {
              const auto* q = reinterpret_cast<const std::uint8_t*>(w.quants());
              ks->dot_q4(q, w.scales(), qa4.data(), sa4.data(), ca4.data(), k, m, got);
              ref.dot_q4(q, w.scales(), qa_ref.data(), sa_ref.data(), ca_ref.data(), k, m, want);
            }
            for (int t = 0; t < m; ++t)
              BOOST_TEST(got[t] == want[t], format_name(f) << " m=" << m << " row " << t << ": "
                                                           << boost::test_tools::tolerance(2e-4f));
          }
          if (f == WeightFormat::q8)
            ks->expand_q8(reinterpret_cast<const std::int8_t*>(w.quants()), w.scales(), k, expanded.data());
          else
            ks->expand_q4(reinterpret_cast<const std::uint8_t*>(w.quants()), w.scales(), k, expanded.data());
          BOOST_TEST(expanded == decoded, boost::test_tools::per_element());
        }
      }
    }
}

BOOST_AUTO_TEST_CASE(attention_blocks_match_a_plain_softmax) {
  std::mt19937 rng(5);
  for (const KernelSet* ks : kernel_sets())
    for (int head_dim : {16, 20, 48, 64, 128, 256})
      for (std::int64_t count : {1, 7, 16, 33, 300})
        for (int heads : {1, 3, 8})  // query heads sharing the key/value head
          for (DType element : {DType::f32, DType::f16, DType::bf16}) {
            const std::int64_t stride = head_dim * 3;  // rows of three key/value heads; use the middle one
            const auto q = test::random_normals(std::size_t(heads * head_dim), rng);
            auto k = test::random_normals(std::size_t(count * stride), rng, 2.0f), v = test::random_normals(std::size_t(count * stride), rng);
            // The stored 16-bit forms; the reference takes the values they hold.
            const bool brain = element == DType::bf16, half = element != DType::f32;
            std::vector<std::uint16_t> k16(k.size()), v16(v.size());
            for (std::size_t i = 0; i < k.size(); ++i) {
              k16[i] = brain ? f32_to_bf16(k[i]) : f32_to_f16(k[i]);
              v16[i] = brain ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
              if (half) {
                k[i] = brain ? bf16_to_f32(k16[i]) : f16_to_f32(k16[i]);
                v[i] = brain ? bf16_to_f32(v16[i]) : f16_to_f32(v16[i]);
              }
            }
            const float scale = 1.0f / std::sqrt(float(head_dim));
            // Kernel: the rows in two blocks (as a prefix and a tree ancestor would come).
            std::vector<float> o(std::size_t(heads * head_dim), 0.0f), scores(std::size_t(heads * count));
            std::vector<AttentionState> st;
            for (int h = 0; h < heads; ++h) st.push_back({-INFINITY, 0.0f, o.data() + h * head_dim});
            const std::int64_t first = (count + 1) / 2;
            const std::size_t elem = half ? 2 : 4;
            const auto* kb = half ? static_cast<const void*>(k16.data()) : static_cast<const void*>(k.data());
            const auto* vb = half ? static_cast<const void*>(v16.data()) : static_cast<const void*>(v.data());
            auto at = [&](const void* base, std::int64_t row) {
              return static_cast<const std::byte*>(base) + std::size_t(row * stride + head_dim) * elem;
            };
            ks->attend(q.data(), heads, at(kb, 0), at(vb, 0), stride, first, head_dim, scale, element, scores.data(), st.data());
            if (count > first)
              ks->attend(q.data(), heads, at(kb, first), at(vb, first), stride, count - first, head_dim, scale, element,
                         scores.data(), st.data());
            for (int h = 0; h < heads; ++h) {
              // Reference: one softmax over all rows.
              const float* qh = q.data() + h * head_dim;
              std::vector<double> p(static_cast<std::size_t>(count)), want(static_cast<std::size_t>(head_dim), 0.0);
              double mx = -1e30, total = 0;
              for (std::int64_t r = 0; r < count; ++r) {
                double s = 0;
                for (int d = 0; d < head_dim; ++d) s += double(qh[d]) * k[std::size_t(r * stride + head_dim + d)];
                p[std::size_t(r)] = s * scale;
                mx = std::max(mx, p[std::size_t(r)]);
              }
              for (auto& x : p) total += (x = std::exp(x - mx));
              for (std::int64_t r = 0; r < count; ++r)
                for (int d = 0; d < head_dim; ++d)
                  want[std::size_t(d)] += p[std::size_t(r)] / total * v[std::size_t(r * stride + head_dim + d)];
              BOOST_TEST_CONTEXT(ks->name << " head_dim=" << head_dim << " rows=" << count << " head " << h << " of "
                                          << heads << (brain ? " bf16" : half ? " f16" : " f32")) {
                for (int d = 0; d < head_dim; ++d)
                  BOOST_TEST_REQUIRE(std::abs(o[std::size_t(h * head_dim + d)] / st[std::size_t(h)].l - want[std::size_t(d)]) <= 1e-5);
              }
            }
          }
}

BOOST_AUTO_TEST_CASE(quantization_error_is_within_half_a_step) {
  std::mt19937 rng(3);
  const HostTensor t = random_matrix(5, 96, rng);
  for (WeightFormat f : {WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4}) {
    const WeightData w = encode(t, f);
    BOOST_TEST(w.bytes.size() == format_bytes(f, 5, 96));
    std::vector<float> row(96);
    for (int r = 0; r < 5; ++r) {
      decode_row(w, r, row.data());
      for (int gi = 0; gi < 3; ++gi) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::abs(t.data[std::size_t(r * 96 + gi * 32 + i)]));
        // int4 maps the largest magnitude to -8 (16 levels); a weight as large on the other side
        // is clipped at +7, a whole step off. Everything else rounds to within half a step.
        const float step = f == WeightFormat::q8 ? amax / 127
                           : f == WeightFormat::q4 ? amax / 8
                           : f == WeightFormat::bf16 ? amax / 128  // 8 significant bits
                                                     : amax / 1024;
        const float bound = f == WeightFormat::q4 ? step * 1.01f : step * 0.51f;
        for (int i = 0; i < 32; ++i) {
          const std::size_t at = std::size_t(r * 96 + gi * 32 + i);
          BOOST_TEST_REQUIRE(std::abs(row[std::size_t(gi * 32 + i)] - t.data[at]) <= bound + 1e-7f);
        }
      }
    }
  }
  BOOST_TEST(!format_fits(WeightFormat::q4, 100));
  BOOST_TEST(format_fits(WeightFormat::f16, 100));
}

BOOST_AUTO_TEST_CASE(matmul_in_every_format_and_path) {
  std::mt19937 rng(4);
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    for (const KernelSet* ks : kernel_sets()) {
      Matmul mm(*ks, pool);
      for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4})
        for (std::int64_t n : {1, 37, 130})
          for (std::int64_t m : std::initializer_list<std::int64_t>{1, 2, 3, 5, 16, 33, sgemm_threshold(*ks, f)}) {
            const std::int64_t k = 160;
            const WeightData w = encode(random_matrix(n, k, rng), f);
            const auto x = test::random_normals(std::size_t(m * k), rng);
            std::vector<float> out(std::size_t(m * n), NAN), row(static_cast<std::size_t>(k));
            mm.run(w, x.data(), m, out.data());
            // Reference: the decoded weights times x in double. Compressed weights also meet x
            // rounded to int8 (the int kernels, and sgemm from its threshold on, alike), which
            // costs up to about 1% of the magnitude of the sum.
            const bool rounds_x = f == WeightFormat::q8 || f == WeightFormat::q4;
            for (std::int64_t r = 0; r < n; ++r) {
              decode_row(w, r, row.data());
              for (std::int64_t t = 0; t < m; ++t) {
                double want = 0, mag = 0;
                for (std::int64_t i = 0; i < k; ++i) {
                  want += double(row[std::size_t(i)]) * x[std::size_t(t * k + i)];
                  mag += std::abs(double(row[std::size_t(i)]) * x[std::size_t(t * k + i)]);
                }
                BOOST_TEST_CONTEXT(ks->name << " " << format_name(f) << " n=" << n << " m=" << m << " threads=" << threads) {
                  BOOST_TEST_REQUIRE(std::abs(out[std::size_t(t * n + r)] - want) <= (rounds_x ? 1e-2 : 1e-5) * mag + 1e-5);
                }
              }
            }
          }
    }
  }
}

// q, k and v (or gate and up) in one call give what three calls give, whatever the pool's
// chunks cover: parts of one product, or the end of one and the start of the next.
BOOST_AUTO_TEST_CASE(a_product_is_the_same_function_at_every_token_count) {
  // What a token gets must not depend on how many tokens share the product (a verified tree, a
  // batch, a prompt chunk): the int kernels take any count below the sgemm threshold exactly
  // alike, and from it on (sgemm) compressed weights meet the same int8-rounded activations, so
  // only float rounding differs. (With f32 activations there, an int8 dot at k = 3072 came out
  // up to 1.1 off.)
  std::mt19937 rng(9);
  ThreadPool pool(2);
  Matmul mm(best_kernels(), pool);
  for (std::int64_t k : {96, 3072})
    for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4}) {
      const std::int64_t n = 24, sgemm = sgemm_threshold(best_kernels(), f);
      const WeightData w = encode(random_matrix(n, k, rng), f);
      for (std::int64_t m : std::initializer_list<std::int64_t>{2, 7, 15, sgemm - 1, sgemm, sgemm + 24}) {
        const auto x = test::random_normals(std::size_t(m * k), rng);
        std::vector<float> together(std::size_t(m * n)), alone(static_cast<std::size_t>(n));
        mm.run(w, x.data(), m, together.data());
        for (std::int64_t t = 0; t < m; ++t) {
          mm.run(w, x.data() + t * k, 1, alone.data());
          for (std::int64_t j = 0; j < n; ++j) {
            const float a = alone[std::size_t(j)], b = together[std::size_t(t * n + j)];
            const bool exact = !is_float_format(f) && m < sgemm;
            // Float rounding in a dot of k unit normals (its size ~sqrt(k)).
            const float rounding = 3e-5f * std::sqrt(float(k));
            BOOST_TEST_REQUIRE((exact ? a == b : std::abs(a - b) <= rounding),
                               format_name(f) << " k=" << k << " m=" << m << " token " << t << ": " << b << " vs " << a);
          }
        }
      }
    }
}

BOOST_AUTO_TEST_CASE(grouped_products_match_separate_ones) {
  std::mt19937 rng(5);
  ThreadPool pool(3);
  Matmul mm(best_kernels(), pool);
  const std::int64_t k = 96;
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::bf16, WeightFormat::q8, WeightFormat::q4})
    for (std::int64_t m : {1, 3, 7, 20}) {
      std::vector<WeightData> ws;
      for (std::int64_t n : {40, 13, 13}) ws.push_back(encode(random_matrix(n, k, rng), f));
      ws.push_back(encode(random_matrix(21, k, rng), f == WeightFormat::q8 ? WeightFormat::q4 : WeightFormat::q8));
      const auto x = test::random_normals(std::size_t(m * k), rng);
      for (std::size_t count : {std::size_t(3), std::size_t(4)}) {  // one format; then a mixed group
        std::vector<std::vector<float>> grouped(count), separate(count);
        std::vector<Matmul::Product> products;
        for (std::size_t i = 0; i < count; ++i) {
          grouped[i].assign(std::size_t(m * ws[i].rows), NAN);
          separate[i].assign(grouped[i].size(), NAN);
          products.push_back({&ws[i], grouped[i].data()});
          mm.run(ws[i], x.data(), m, separate[i].data());
        }
        mm.run(products, x.data(), m);
        for (std::size_t i = 0; i < count; ++i)
          for (std::size_t j = 0; j < grouped[i].size(); ++j)
            BOOST_TEST_REQUIRE(std::abs(grouped[i][j] - separate[i][j]) <= 1e-5f * (1 + std::abs(separate[i][j])),
                               format_name(f) << " m=" << m << " product " << i << " of " << count << " at " << j);
      }
    }
}
