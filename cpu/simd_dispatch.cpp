#include <cstdlib>
#include <string>

#include "cpu/simd_kernels.hpp"
#include "model/error.hpp"

namespace banyan::cpu {

#ifndef BANYAN_X86_KERNELS
const KernelSet* avx2_kernels() { return nullptr; }
const KernelSet* avx512_kernels() { return nullptr; }
#endif

namespace {

#ifdef BANYAN_X86_KERNELS
bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
}
bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#else
bool cpu_has_avx512() { return false; }
bool cpu_has_avx2() { return false; }
#endif

const KernelSet& choose() {
  const KernelSet* avx512 = cpu_has_avx512() ? avx512_kernels() : nullptr;
  const KernelSet* avx2 = cpu_has_avx2() ? avx2_kernels() : nullptr;
  const char* env = std::getenv("BANYAN_KERNELS");
  const std::string want = env ? env : "";
  if (want.empty()) return avx512 ? *avx512 : avx2 ? *avx2 : portable_kernels();
  if (want == "portable") return portable_kernels();
  if (want == "avx2" && avx2) return *avx2;
  if (want == "avx512" && avx512) return *avx512;
  throw Error("BANYAN_KERNELS=" + want + ": not one of the kernel sets this CPU and build support (portable" +
              (avx2 ? ", avx2" : "") + (avx512 ? ", avx512" : "") + ")");
}

}  // namespace

const KernelSet& best_kernels() {
  static const KernelSet& set = choose();
  return set;
}

}  // namespace banyan::cpu
