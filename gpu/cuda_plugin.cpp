// The entry point `banyan` looks up after loading this plugin (cli/model_setup.cpp).
#include "gpu/cuda_backend.hpp"

extern "C" banyan::Backend* banyan_make_cuda_backend() { return banyan::gpu::make_cuda_backend().release(); }
