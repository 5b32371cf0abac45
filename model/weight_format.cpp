#include "model/weight_format.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "model/error.hpp"

namespace banyan {

std::string_view format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::f32: return "f32";
    case WeightFormat::f16: return "f16";
    case WeightFormat::bf16: return "bf16";
    case WeightFormat::q8: return "int8";
    case WeightFormat::q4: return "int4";
  }
  return "?";
}

std::optional<WeightFormat> parse_format(std::string_view name) {
  if (name == "f32") return WeightFormat::f32;
  if (name == "f16") return WeightFormat::f16;
  if (name == "bf16") return WeightFormat::bf16;
  if (name == "int8" || name == "q8") return WeightFormat::q8;
  if (name == "int4" || name == "q4") return WeightFormat::q4;
  return std::nullopt;
}

double bits_per_weight(WeightFormat f) {
  switch (f) {
    case WeightFormat::f32: return 32;
    case WeightFormat::f16:
    case WeightFormat::bf16: return 16;
    case WeightFormat::q8: return 8 + 16.0 / kQuantGroup;
    case WeightFormat::q4: return 4 + 16.0 / kQuantGroup;
  }
  return 0;
}

namespace {
std::size_t align64(std::size_t n) { return (n + 63) / 64 * 64; }
// Bits of one weight's value or quant, scales aside.
int bits_per_value(WeightFormat f) {
  switch (f) {
    case WeightFormat::f32: return 32;
    case WeightFormat::f16:
    case WeightFormat::bf16: return 16;
    case WeightFormat::q8: return 8;
    case WeightFormat::q4: return 4;
  }
  return 0;
}
}  // namespace

std::size_t quant_bytes(WeightFormat f, std::int64_t rows, std::int64_t cols) {
  const auto n = std::size_t(rows * cols);
  switch (f) {
    case WeightFormat::f32: return n * 4;
    case WeightFormat::f16:
    case WeightFormat::bf16: return n * 2;
    case WeightFormat::q8: return align64(n);
    case WeightFormat::q4: return align64(n / 2);
  }
  return 0;
}

std::size_t format_bytes(WeightFormat f, std::int64_t rows, std::int64_t cols) {
  const std::size_t q = quant_bytes(f, rows, cols);
  if (is_float_format(f)) return q;
  return q + align64(std::size_t(rows * cols / kQuantGroup) * 2);
}

std::size_t WeightData::quant_bytes() const { return banyan::quant_bytes(format, rows, cols); }

const std::uint16_t* WeightData::scales() const {
  return reinterpret_cast<const std::uint16_t*>(bytes.data() + quant_bytes());
}

bool format_fits(WeightFormat f, std::int64_t cols) {
  return is_float_format(f) || cols % kQuantGroup == 0;
}

namespace {

// 64-byte aligned, zero-filled storage that a WeightData can own.
std::shared_ptr<std::byte[]> aligned_buffer(std::size_t n) {
  auto* p = static_cast<std::byte*>(::operator new[](n, std::align_val_t(64)));
  std::memset(p, 0, n);
  return std::shared_ptr<std::byte[]>(p, [](std::byte* q) { ::operator delete[](q, std::align_val_t(64)); });
}

void quantize_rows(const float* src, std::int64_t rows, std::int64_t cols, WeightFormat f, std::byte* quants,
                   std::uint16_t* scales) {
  const std::int64_t groups = cols / kQuantGroup;
  const float qmax = f == WeightFormat::q8 ? 127.0f : 7.0f;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t g = 0; g < groups; ++g) {
      const float* x = src + r * cols + g * kQuantGroup;
      float amax = 0, signed_max = 0;
      for (int i = 0; i < kQuantGroup; ++i)
        if (std::abs(x[i]) > amax) amax = std::abs(x[i]), signed_max = x[i];
      // int4 has one more level below zero than above: the largest-magnitude weight goes to -8,
      // whatever its sign (a negative scale flips the rest), so all 16 levels are used.
      const float divisor = f == WeightFormat::q8 ? qmax : -8.0f;
      const float top = f == WeightFormat::q8 ? amax : signed_max;
      // Round the scale to f16 first so the quants are chosen against the scale actually stored.
      const std::uint16_t s16 = f32_to_f16(top / divisor);
      const float scale = f16_to_f32(s16);
      const float inv = scale != 0 ? 1.0f / scale : 0.0f;
      scales[r * groups + g] = s16;
      if (f == WeightFormat::q8) {
        auto* q = reinterpret_cast<std::int8_t*>(quants) + r * cols + g * kQuantGroup;
        for (int i = 0; i < kQuantGroup; ++i) q[i] = std::int8_t(std::clamp(std::lround(x[i] * inv), -127L, 127L));
      } else {
        auto* q = reinterpret_cast<std::uint8_t*>(quants) + (r * cols + g * kQuantGroup) / 2;
        for (int j = 0; j < kQuantGroup / 2; ++j) {
          const long lo = std::clamp(std::lround(x[j] * inv), -8L, 7L) + 8;
          const long hi = std::clamp(std::lround(x[j + kQuantGroup / 2] * inv), -8L, 7L) + 8;
          q[j] = std::uint8_t(lo | (hi << 4));
        }
      }
    }
  }
}

}  // namespace

WeightData encode(HostTensor t, WeightFormat f) {
  WeightData w;
  w.format = f;
  w.rows = t.shape.size() == 2 ? t.shape[0] : 1;
  w.cols = t.shape.empty() ? 1 : t.shape.back();
  if (!format_fits(f, w.cols))
    throw Error("cannot store a matrix with " + std::to_string(w.cols) + " columns as " + std::string(format_name(f)) +
                " (needs a multiple of " + std::to_string(kQuantGroup) + ")");
  const std::size_t n = t.data.size();
  if (f == WeightFormat::f32) {
    auto owned = std::make_shared<std::vector<float>>(std::move(t.data));
    w.bytes = std::as_bytes(std::span<const float>(*owned));
    w.owner = owned;
    return w;
  }
  const std::size_t size = format_bytes(f, w.rows, w.cols);
  auto buffer = aligned_buffer(size);
  if (f == WeightFormat::f16 || f == WeightFormat::bf16) {
    auto* out = reinterpret_cast<std::uint16_t*>(buffer.get());
    for (std::size_t i = 0; i < n; ++i) out[i] = f == WeightFormat::f16 ? f32_to_f16(t.data[i]) : f32_to_bf16(t.data[i]);
  } else {
    quantize_rows(t.data.data(), w.rows, w.cols, f, buffer.get(),
                  reinterpret_cast<std::uint16_t*>(buffer.get() + quant_bytes(f, w.rows, w.cols)));
  }
  w.bytes = {buffer.get(), size};
  w.owner = buffer;
  return w;
}

WeightData slice(const WeightData& w, std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols) {
  const bool quantized = !is_float_format(w.format);
  if (row0 < 0 || rows < 1 || row0 + rows > w.rows || col0 < 0 || cols < 1 || col0 + cols > w.cols ||
      (quantized && (col0 % kQuantGroup != 0 || cols % kQuantGroup != 0)))
    throw Error("cannot cut rows " + std::to_string(row0) + "+" + std::to_string(rows) + ", columns " +
                std::to_string(col0) + "+" + std::to_string(cols) + " from a " + std::string(format_name(w.format)) +
                " matrix of " + std::to_string(w.rows) + " x " + std::to_string(w.cols));
  // Bytes of n weights in a row's quants (or values): q4 packs two a byte.
  const auto row_bytes = [&](std::int64_t n) { return std::size_t(n) * std::size_t(bits_per_value(w.format)) / 8; };
  WeightData out;
  out.format = w.format;
  out.rows = rows;
  out.cols = cols;
  const std::size_t size = format_bytes(w.format, rows, cols);
  auto buffer = aligned_buffer(size);
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(buffer.get() + std::size_t(r) * row_bytes(cols),
                w.bytes.data() + std::size_t(row0 + r) * row_bytes(w.cols) + row_bytes(col0), row_bytes(cols));
  if (quantized) {
    auto* scales = reinterpret_cast<std::uint16_t*>(buffer.get() + quant_bytes(w.format, rows, cols));
    const std::int64_t groups = cols / kQuantGroup, all_groups = w.cols / kQuantGroup;
    for (std::int64_t r = 0; r < rows; ++r)
      std::memcpy(scales + r * groups, w.scales() + (row0 + r) * all_groups + col0 / kQuantGroup,
                  std::size_t(groups) * sizeof(std::uint16_t));
  }
  out.bytes = {buffer.get(), size};
  out.owner = buffer;
  return out;
}

void decode_row(const WeightData& w, std::int64_t r, float* out) {
  const std::int64_t k = w.cols;
  switch (w.format) {
    case WeightFormat::f32:
      std::memcpy(out, w.bytes.data() + r * k * 4, std::size_t(k) * 4);
      return;
    case WeightFormat::f16:
    case WeightFormat::bf16:
      convert_to_f32(w.format == WeightFormat::f16 ? DType::f16 : DType::bf16, w.bytes.data() + r * k * 2,
                     {out, std::size_t(k)});
      return;
    case WeightFormat::q8: {
      const auto* q = reinterpret_cast<const std::int8_t*>(w.quants()) + r * k;
      for (std::int64_t i = 0; i < k; ++i) out[i] = float(q[i]) * f16_to_f32(w.scales()[(r * k + i) / kQuantGroup]);
      return;
    }
    case WeightFormat::q4: {
      const auto* q = reinterpret_cast<const std::uint8_t*>(w.quants()) + r * k / 2;
      for (std::int64_t g = 0; g < k / kQuantGroup; ++g) {
        const float s = f16_to_f32(w.scales()[r * k / kQuantGroup + g]);
        for (int j = 0; j < kQuantGroup / 2; ++j) {
          const std::uint8_t b = q[g * kQuantGroup / 2 + j];
          out[g * kQuantGroup + j] = float(int(b & 0x0f) - 8) * s;
          out[g * kQuantGroup + j + kQuantGroup / 2] = float(int(b >> 4) - 8) * s;
        }
      }
      return;
    }
  }
}

HostTensor decode(const WeightData& w) {
  HostTensor t;
  t.shape = w.rows == 1 ? std::vector<std::int64_t>{w.cols} : std::vector<std::int64_t>{w.rows, w.cols};
  t.data.resize(std::size_t(w.rows * w.cols));
  for (std::int64_t r = 0; r < w.rows; ++r) decode_row(w, r, t.data.data() + r * w.cols);
  return t;
}

}  // namespace banyan
