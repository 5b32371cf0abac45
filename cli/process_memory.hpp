#pragma once
// The process's peak resident memory, for reports (the CLI's --stats, the benchmarks).
#include <cstddef>
#include <sys/resource.h>

namespace banyan::cli {

inline std::size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::size_t(u.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace banyan::cli
