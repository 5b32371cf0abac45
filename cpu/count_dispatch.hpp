#pragma once
// Run-time counts of rows or tokens (1..4) turned into compile-time ones, so the kernels keep
// their accumulators in registers: calls f(std::integral_constant<int, n>{}). Counts above 4
// take 4 (callers pass 1..4).
#include <type_traits>

namespace banyan::cpu {

template <typename F>
void with_count(int n, F&& f) {
  switch (n) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    default: return f(std::integral_constant<int, 4>{});
  }
}

}  // namespace banyan::cpu
