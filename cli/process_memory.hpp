#pragma once
// The process's memory: its peak for reports (the CLI's --stats, the benchmarks), and how freed
// memory is kept.
#include <cstddef>
#include <malloc.h>
#include <sys/resource.h>

namespace banyan::cli {

// Keeps what the process frees for its next allocations rather than handing it back to the
// system at once: a page given back and touched again costs a page fault, and on a virtual
// machine faults cost more than copying the page (bench transport: fresh 64 MiB buffers ran the
// activation path 6x slower than raw UCX). Allocations up to 32 MiB (glibc's largest) come from
// the heap, which keeps up to 1 GiB free before it trims.
inline void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

inline std::size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::size_t(u.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace banyan::cli
