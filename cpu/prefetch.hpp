#pragma once
// Weights stream from memory once per token. One core's outstanding cache misses cap what the
// hardware prefetchers fetch (about 10 GB/s here); asking for the bytes 4 KiB ahead (the rows
// lie back to back, so that is usually the next row) keeps enough misses in flight to reach
// the memory bandwidth. Prefetching past the end of the matrix is harmless. (SSE: every x86-64
// kernel set may use it.)
#include <xmmintrin.h>

namespace banyan::cpu {

constexpr int kPrefetchBytes = 4096;
inline void prefetch_ahead(const void* p) {
  _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
}

}  // namespace banyan::cpu
