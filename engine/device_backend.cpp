#include "engine/device_backend.hpp"

#include <cstdlib>
#include <dlfcn.h>
#include <filesystem>

#include "cpu/cpu_backend.hpp"
#include "model/error.hpp"

namespace banyan {

namespace {

// The plugin is looked for at $BANYAN_CUDA_PLUGIN, beside the running program, and one folder
// up (the build folder holds `banyan` and the plugin; tests and benches sit in its subfolders).
void* cuda_plugin() {
#ifdef BANYAN_WITH_CUDA
  static void* const plugin = [] {
    std::vector<std::filesystem::path> places;
    if (const char* env = std::getenv("BANYAN_CUDA_PLUGIN")) places.emplace_back(env);
    const auto dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
    places.push_back(dir / "libbanyan_cuda.so");
    places.push_back(dir.parent_path() / "libbanyan_cuda.so");
    for (const auto& path : places) {
      if (!std::filesystem::exists(path)) continue;
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) throw Error("--device cuda: cannot load the CUDA backend: " + std::string(::dlerror()));
      return handle;
    }
    throw Error("--device cuda: the CUDA backend libbanyan_cuda.so is neither at $BANYAN_CUDA_PLUGIN nor beside " +
                dir.string());
  }();
  return plugin;
#else
  throw Error("--device cuda: this build has no CUDA backend (configure with -DBANYAN_CUDA=ON)");
#endif
}

template <typename Function>
Function* entry(const char* name) {
  auto* f = reinterpret_cast<Function*>(::dlsym(cuda_plugin(), name));
  if (!f) throw Error(std::string("--device cuda: the CUDA plugin has no ") + name + ": it is not Banyan's, or older");
  return f;
}

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (threads < 0) throw Error("--threads must be 0 or more");
  if (device == "cpu") return cpu::make_cpu_backend({threads});
  if (device == "cuda") return std::unique_ptr<Backend>(entry<Backend*()>("banyan_make_cuda_backend")());
  throw Error("--device must be 'cpu' or 'cuda', got '" + device + "'");
}

std::string cuda_description() { return entry<const char*()>("banyan_cuda_description")(); }

double cuda_read_gb_per_s() { return entry<double()>("banyan_cuda_read_gb_per_s")(); }

}  // namespace banyan
