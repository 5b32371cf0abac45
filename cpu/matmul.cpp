#include "cpu/matmul.hpp"

#include <algorithm>
#include <cblas.h>

namespace banyan::cpu {

int sgemm_threshold(WeightFormat) { return 16; }

namespace {
constexpr std::int64_t kL1ActivationBytes = 16 << 10;  // half of L1d: the weight slices stream through the rest
constexpr std::int64_t kRowBlock = 16;                 // weight rows per pass over the slices
}  // namespace

void Matmul::run(const WeightData& w, const float* x, std::int64_t m, float* out) {
  std::lock_guard lock(scratch_mutex_);
  if (m >= sgemm_threshold(w.format)) {
    blocked_sgemm(w, x, m, out);
  } else {
    dots(w, x, m, out);
  }
}

void Matmul::dots(const WeightData& w, const float* x, std::int64_t m, float* out) {
  if (w.format == WeightFormat::f32 || w.format == WeightFormat::f16)
    float_dots(w, x, m, out);
  else
    quantized_dots(w, x, m, out);
}

void Matmul::float_dots(const WeightData& w, const float* x, std::int64_t m, float* out) {
  const std::int64_t n = w.rows, k = w.cols;
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
  pool_.parallel_for(n, kRowBlock, [&](std::int64_t begin, std::int64_t end) {
    float dots[kDotWeightRows * kMaxFloatDotRows];
    for (std::int64_t r0 = begin; r0 < end; r0 += kRowBlock) {
      const std::int64_t block_end = std::min(end, r0 + kRowBlock);
      for (std::int64_t c = 0; c < k; c += slice) {
        const std::int64_t len = std::min(slice, k - c);
        for (std::int64_t r = r0; r < block_end; r += weight_rows) {
          const int rows = int(std::min<std::int64_t>(weight_rows, block_end - r));
          for (std::int64_t t = 0; t < m; t += kMaxFloatDotRows) {
            const int tokens = int(std::min<std::int64_t>(kMaxFloatDotRows, m - t));
            if (w.format == WeightFormat::f32)
              k_.dot_f32(reinterpret_cast<const float*>(w.bytes.data()) + r * k + c, k, rows, x + t * k + c, k, len,
                         tokens, dots);
            else
              k_.dot_f16(reinterpret_cast<const std::uint16_t*>(w.bytes.data()) + r * k + c, k, rows, x + t * k + c, k,
                         len, tokens, dots);
            for (int i = 0; i < rows; ++i)
              for (int j = 0; j < tokens; ++j) {
                float& o = out[(t + j) * n + r + i];
                o = c == 0 ? dots[i * tokens + j] : o + dots[i * tokens + j];
              }
          }
        }
      }
    }
  });
}

void Matmul::quantized_dots(const WeightData& w, const float* x, std::int64_t m, float* out) {
  const std::int64_t n = w.rows, k = w.cols, groups = k / kQuantGroup;
  const bool q4 = w.format == WeightFormat::q4;
  qa_.resize(std::size_t(m * k));
  sa_.resize(std::size_t(m * groups));
  ca_.resize(sa_.size());
  for (std::int64_t t = 0; t < m; ++t)
    k_.quantize_row(x + t * k, k, qa_.data() + t * k, sa_.data() + t * groups, ca_.data() + t * groups, q4);
  pool_.parallel_for(n, kRowBlock, [&](std::int64_t begin, std::int64_t end) {
    float dots[kMaxDotRows];
    for (std::int64_t r = begin; r < end; ++r)
      for (std::int64_t t = 0; t < m; t += kMaxDotRows) {
        const int rows = int(std::min<std::int64_t>(kMaxDotRows, m - t));
        if (q4)
          k_.dot_q4(reinterpret_cast<const std::uint8_t*>(w.quants()) + r * k / 2, w.scales() + r * groups,
                    qa_.data() + t * k, sa_.data() + t * groups, ca_.data() + t * groups, k, rows, dots);
        else
          k_.dot_q8(reinterpret_cast<const std::int8_t*>(w.quants()) + r * k, w.scales() + r * groups,
                    qa_.data() + t * k, sa_.data() + t * groups, ca_.data() + t * groups, k, rows, dots);
        for (int j = 0; j < rows; ++j) out[(t + j) * n + r] = dots[j];
      }
  });
}

void Matmul::blocked_sgemm(const WeightData& w, const float* x, std::int64_t m, float* out) {
  const std::int64_t n = w.rows, k = w.cols;
  if (w.format == WeightFormat::f32) {
    // One call: OpenBLAS threads and blocks a large product better than slices of it.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f, x, int(k),
                reinterpret_cast<const float*>(w.bytes.data()), int(k), 0.0f, out, int(n));
    return;
  }
  // Compressed weights: expand a chunk of rows to f32 (in parallel), multiply it, next chunk.
  // Chunks of about 8 MiB keep the scratch small and the products large.
  const std::int64_t chunk = std::max<std::int64_t>(64, (std::int64_t(8) << 20) / (k * 4));
  expanded_.resize(std::size_t(std::min(chunk, n) * k));
  const std::int64_t groups = k / kQuantGroup;
  for (std::int64_t r0 = 0; r0 < n; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, n - r0);
    pool_.parallel_for(rows, 16, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const std::int64_t r = r0 + i;
        float* dst = expanded_.data() + i * k;
        switch (w.format) {
          case WeightFormat::f16:
            k_.expand_f16(reinterpret_cast<const std::uint16_t*>(w.bytes.data()) + r * k, k, dst);
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
    });
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(rows), int(k), 1.0f, x, int(k), expanded_.data(),
                int(k), 0.0f, out + r0, int(n));
  }
}
}  // namespace banyan::cpu
