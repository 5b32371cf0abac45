#include "engine/device_backend.hpp"

#include <cstdlib>
#include <dlfcn.h>
#include <filesystem>

#include "cpu/cpu_backend.hpp"
#include "engine/local_all_reduce.hpp"
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

std::unique_ptr<Backend> make_backend(const std::string& device, int threads, int gpu) {
  if (threads < 0) throw Error("--threads must be 0 or more");
  if (device == "cpu") return cpu::make_cpu_backend({threads});
  if (device == "cuda") return std::unique_ptr<Backend>(entry<Backend*(int)>("banyan_make_cuda_backend_on")(gpu));
  throw Error("--device must be 'cpu' or 'cuda', got '" + device + "'");
}

int cuda_device_count() { return entry<int()>("banyan_cuda_device_count")(); }

ShardBackends make_shard_backends(const std::string& device, int threads, int count) {
  ShardBackends s;
  s.nccl = device == "cuda" && count > 1 && cuda_device_count() >= count;
  for (int i = 0; i < count; ++i) s.backends.push_back(make_backend(device, std::max(1, threads / count), s.nccl ? i : 0));
  const std::string n = std::to_string(count);
  s.description = s.nccl ? n + " tensor shards on " + n + " GPUs, summing through NCCL"
                         : n + " tensor shards on " + s.backends.front()->name() + ", summing through " +
                               (device == "cpu" ? "shared memory" : "host memory");
  return s;
}

std::vector<std::shared_ptr<Collective>> ShardBackends::collectives() const {
  if (!nccl) return local_all_reduce(int(backends.size()));
  std::vector<Backend*> on;
  for (const auto& b : backends) on.push_back(b.get());
  return nccl_all_reduce(on);
}

std::vector<std::shared_ptr<Collective>> nccl_all_reduce(std::span<Backend* const> backends) {
  std::vector<std::shared_ptr<Collective>> ranks(backends.size());
  entry<void(Backend* const*, int, std::shared_ptr<Collective>*)>("banyan_make_nccl_all_reduce")(
      backends.data(), int(backends.size()), ranks.data());
  return ranks;
}

std::string cuda_description() { return entry<const char*()>("banyan_cuda_description")(); }

double cuda_read_gb_per_s() { return entry<double()>("banyan_cuda_read_gb_per_s")(); }

}  // namespace banyan
