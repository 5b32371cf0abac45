#include "cpu/matmul.hpp"

#include <algorithm>
#include <cblas.h>

namespace banyan::cpu {

int sgemm_threshold(const KernelSet& k, WeightFormat f) { return f == WeightFormat::f32 ? k.sgemm_from_f32 : k.sgemm_from_expanded; }

namespace {
constexpr std::int64_t kL1ActivationBytes = 16 << 10;  // half of L1d: the weight slices stream through the rest
constexpr std::int64_t kRowBlock = 16;                 // weight rows per pass over the slices

// Calls fn(product, begin, end) with the rows of each product that [begin, end) covers, the
// products' rows counted one after another.
template <typename F>
void for_each_part(std::span<const Matmul::Product> products, std::int64_t begin, std::int64_t end, F&& fn) {
  std::int64_t first = 0;
  for (const auto& p : products) {
    const std::int64_t b = std::max(begin, first), e = std::min(end, first + p.w->rows);
    if (b < e) fn(p, b - first, e - first);
    first += p.w->rows;
  }
}

std::int64_t total_rows(std::span<const Matmul::Product> products) {
  std::int64_t n = 0;
  for (const auto& p : products) n += p.w->rows;
  return n;
}

}  // namespace

Matmul::Matmul(const KernelSet& kernels, ThreadPool& pool) : k_(kernels), pool_(pool) {
  // Products run on the pool, each thread multiplying its own rows: OpenBLAS's own threads keep
  // spinning for a while after each call, and took turns with the pool's on the same cores.
  openblas_set_num_threads(1);
}

void Matmul::run(const WeightData& w, const float* x, std::int64_t m, float* out) {
  const Product p{&w, out};
  run(std::span(&p, 1), x, m);
}

void Matmul::run(std::span<const Product> products, const float* x, std::int64_t m) {
  std::lock_guard lock(scratch_mutex_);
  const WeightFormat format = products.front().w->format;
  if (std::all_of(products.begin(), products.end(), [&](const Product& p) { return p.w->format == format; })) {
    one_format(products, x, m);
    return;
  }
  for (const auto& p : products) one_format(std::span(&p, 1), x, m);
}

void Matmul::one_format(std::span<const Product> products, const float* x, std::int64_t m) {
  const WeightFormat format = products.front().w->format;
  if (m >= sgemm_threshold(k_, format)) {
    const float* a = is_float_format(format) ? x : rounded_activations(x, m, products.front().w->cols);
    for (const auto& p : products) blocked_sgemm(*p.w, a, m, p.out);
  } else if (is_float_format(format)) {
    float_dots(products, x, m);
  } else {
    quantized_dots(products, x, m);
  }
}

void Matmul::float_dots(std::span<const Product> products, const float* x, std::int64_t m) {
  const std::int64_t k = products.front().w->cols;
  // Float activations of a few tokens outgrow L1 at large k (4 x 3072 floats = 48 KiB), and
  // fetching them from L2 again for every weight row makes the dots load-bound. Then the weights
  // go in column slices whose activations fit L1, slice by slice over a block of rows
  // (measured: 4 tokens at k = 3072 1.3x faster; below 32 KiB slicing only costs).
  const std::int64_t bytes = std::min<std::int64_t>(m, kMaxFloatDotRows) * k * 4;
  const std::int64_t slices = bytes <= 2 * kL1ActivationBytes ? 1 : (bytes + kL1ActivationBytes - 1) / kL1ActivationBytes;
  const std::int64_t slice = slices == 1 ? k : (k / slices + 63) / 64 * 64;
  // One token reads one weight row at a time: four rows' streams at once were no faster for f32
  // and 0.8x for f16 (2 threads, llama-160m shape); from two tokens on, four rows are 1.3-1.5x.
  const int weight_rows = m == 1 ? 1 : kDotWeightRows;
  pool_.parallel_for(total_rows(products), kRowBlock, [&](std::int64_t begin, std::int64_t end) {
    float dots[kDotWeightRows * kMaxFloatDotRows];
    for_each_part(products, begin, end, [&](const Product& p, std::int64_t from, std::int64_t to) {
      const WeightData& w = *p.w;
      const std::int64_t n = w.rows;
      for (std::int64_t r0 = from; r0 < to; r0 += kRowBlock) {
        const std::int64_t block_end = std::min(to, r0 + kRowBlock);
        for (std::int64_t c = 0; c < k; c += slice) {
          const std::int64_t len = std::min(slice, k - c);
          for (std::int64_t r = r0; r < block_end; r += weight_rows) {
            const int rows = int(std::min<std::int64_t>(weight_rows, block_end - r));
            for (std::int64_t t = 0; t < m; t += kMaxFloatDotRows) {
              const int tokens = int(std::min<std::int64_t>(kMaxFloatDotRows, m - t));
              const std::int64_t at = r * k + c;
              if (w.format == WeightFormat::f32)
                k_.dot_f32(reinterpret_cast<const float*>(w.bytes.data()) + at, k, rows, x + t * k + c, k, len, tokens, dots);
              else if (w.format == WeightFormat::f16)
                k_.dot_f16(reinterpret_cast<const std::uint16_t*>(w.bytes.data()) + at, k, rows, x + t * k + c, k, len,
                           tokens, dots);
              else
                k_.dot_bf16(reinterpret_cast<const Bf16*>(w.bytes.data()) + at, k, rows, x + t * k + c, k, len, tokens,
                            dots);
              for (int i = 0; i < rows; ++i)
                for (int j = 0; j < tokens; ++j) {
                  float& o = p.out[(t + j) * n + r + i];
                  o = c == 0 ? dots[i * tokens + j] : o + dots[i * tokens + j];
                }
            }
          }
        }
      }
    });
  });
}

void Matmul::quantize_activations(const float* x, std::int64_t m, std::int64_t k, bool q4) {
  const std::int64_t groups = k / kQuantGroup;
  qa_.resize(std::size_t(m * k));
  sa_.resize(std::size_t(m * groups));
  ca_.resize(sa_.size());
  for (std::int64_t t = 0; t < m; ++t)
    k_.quantize_row(x + t * k, k, qa_.data() + t * k, sa_.data() + t * groups, ca_.data() + t * groups, q4);
}

const float* Matmul::rounded_activations(const float* x, std::int64_t m, std::int64_t k) {
  quantize_activations(x, m, k, false);  // the same values as for int4 weights, in plain order
  rounded_.resize(std::size_t(m * k));
  for (std::int64_t i = 0; i < m * k; ++i) rounded_[std::size_t(i)] = float(qa_[std::size_t(i)]) * sa_[std::size_t(i / kQuantGroup)];
  return rounded_.data();
}

void Matmul::quantized_dots(std::span<const Product> products, const float* x, std::int64_t m) {
  const std::int64_t k = products.front().w->cols, groups = k / kQuantGroup;
  const bool q4 = products.front().w->format == WeightFormat::q4;
  quantize_activations(x, m, k, q4);
  pool_.parallel_for(total_rows(products), kRowBlock, [&](std::int64_t begin, std::int64_t end) {
    float dots[kMaxDotRows];
    for_each_part(products, begin, end, [&](const Product& p, std::int64_t from, std::int64_t to) {
      const std::int64_t n = p.w->rows;
      const auto* quants = p.w->quants();
      const std::uint16_t* scales = p.w->scales();
      for (std::int64_t r = from; r < to; ++r)
        for (std::int64_t t = 0; t < m; t += kMaxDotRows) {
          const int rows = int(std::min<std::int64_t>(kMaxDotRows, m - t));
          if (q4)
            k_.dot_q4(reinterpret_cast<const std::uint8_t*>(quants) + r * k / 2, scales + r * groups, qa_.data() + t * k,
                      sa_.data() + t * groups, ca_.data() + t * groups, k, rows, dots);
          else
            k_.dot_q8(reinterpret_cast<const std::int8_t*>(quants) + r * k, scales + r * groups, qa_.data() + t * k,
                      sa_.data() + t * groups, ca_.data() + t * groups, k, rows, dots);
          for (int j = 0; j < rows; ++j) p.out[(t + j) * n + r] = dots[j];
        }
    });
  });
}

void Matmul::blocked_sgemm(const WeightData& w, const float* x, std::int64_t m, float* out) {
  const std::int64_t n = w.rows, k = w.cols, groups = k / kQuantGroup;
  // A range of rows per thread, in as few sgemm calls as that allows: each call packs x again.
  // Compressed weights are expanded to f32 in blocks of 8 MiB by the thread that multiplies
  // them (TinyLlama's 512-token prompt, int4: 1.2x the prompt tok/s of 1 MiB blocks, f16 1.15x).
  const std::int64_t block = std::max<std::int64_t>(16, (std::int64_t(8) << 20) / (k * 4));
  pool_.parallel_for(n, (n + pool_.size() - 1) / pool_.size(), [&](std::int64_t begin, std::int64_t end) {
    if (w.format == WeightFormat::f32) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(end - begin), int(k), 1.0f, x, int(k),
                  reinterpret_cast<const float*>(w.bytes.data()) + begin * k, int(k), 0.0f, out + begin, int(n));
      return;
    }
    thread_local std::vector<float> expanded;
    for (std::int64_t r0 = begin; r0 < end; r0 += block) {
      const std::int64_t rows = std::min(block, end - r0);
      expanded.resize(std::size_t(rows * k));
      for (std::int64_t r = r0; r < r0 + rows; ++r) {
        float* dst = expanded.data() + (r - r0) * k;
        switch (w.format) {
          case WeightFormat::f16:
            k_.expand_f16(reinterpret_cast<const std::uint16_t*>(w.bytes.data()) + r * k, k, dst);
            break;
          case WeightFormat::bf16:
            k_.expand_bf16(reinterpret_cast<const Bf16*>(w.bytes.data()) + r * k, k, dst);
            break;
          case WeightFormat::q8:
            k_.expand_q8(reinterpret_cast<const std::int8_t*>(w.quants()) + r * k, w.scales() + r * groups, k, dst);
            break;
          case WeightFormat::q4:
            k_.expand_q4(reinterpret_cast<const std::uint8_t*>(w.quants()) + r * k / 2, w.scales() + r * groups, k, dst);
            break;
          case WeightFormat::f32:
            break;
        }
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(rows), int(k), 1.0f, x, int(k), expanded.data(),
                  int(k), 0.0f, out + r0, int(n));
    }
  });
}
}  // namespace banyan::cpu
