#pragma once
// OpenBLAS 0.3.21 (Debian 12) does not recognise some recent x86 CPUs (Sapphire Rapids among
// them) and falls back to its Prescott (SSE3) kernels: sgemm 4-5x slower. It reads
// OPENBLAS_CORETYPE only when it is loaded, so a program that finds the fallback runs itself
// again with the core type its CPU can use. Call it first thing in main(); it returns when no
// restart was needed (or none was possible).
namespace banyan::cpu {

void restart_with_fast_blas(char** argv);

}  // namespace banyan::cpu
