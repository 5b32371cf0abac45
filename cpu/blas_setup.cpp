#include "cpu/blas_setup.hpp"

#include <cblas.h>
#include <cstdlib>
#include <string_view>
#include <unistd.h>

namespace banyan::cpu {

namespace {

// The OpenBLAS kernels for this CPU's vector width, when it has one OpenBLAS knows.
const char* core_type_for_this_cpu() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace

void restart_with_fast_blas(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user chose, or we already restarted
  const std::string_view current = openblas_get_corename();
  if (current != "Prescott" && current != "Core2" && current != "Nehalem") return;
  const char* better = core_type_for_this_cpu();
  if (better == nullptr) return;
  ::setenv("OPENBLAS_CORETYPE", better, 1);
  ::execv("/proc/self/exe", argv);  // only returns on failure: carry on with the slow kernels
}

}  // namespace banyan::cpu
