// bench offload: decoding with the LLM offloaded (paged from its `banyan convert` file under a
// memory budget, model/weight_paging.hpp; with --device cuda, streamed from pinned host memory
// into device slots) against the same LLM resident, in one run: tokens/s at batch 1, MiB
// streamed per token, the share of time compute waited for weights, and speculative decoding
// under the smallest budget. SpecInfer's point: one stream of the weights per step verifies
// several tokens. --cold evicts streamed weights from the page cache as well, so every stream
// reads the disk, as on a node whose memory cannot hold the file.
#include <algorithm>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <unistd.h>

#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "bench/demo_pair.hpp"
#include "cli/option_types.hpp"
#include "engine/device_backend.hpp"
#include "engine/engine.hpp"
#include "model/converted_file.hpp"
#include "model/error.hpp"
#include "model/random_weights.hpp"

namespace banyan::bench {

namespace {

struct Pair {
  std::string name;
  std::filesystem::path llm_file;          // a `banyan convert` file, written for the run
  std::unique_ptr<WeightSource> ssm;        // none: no speculative rows
  WeightFormat format = WeightFormat::f32;  // the LLM's linear layers
  std::vector<std::vector<std::int32_t>> prompts;
};

struct Row {
  std::string mode;
  int budget_percent = 100;  // 100: resident
  double seconds = 0, tokens_per_s = 0, accepted_per_step = 1;
  long long tokens = 0;
  OffloadStats offload;
  std::vector<std::vector<std::int32_t>> outputs;
};

// Drops the file from the page cache: the next read comes from the disk.
void evict_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(file.string() + ": cannot open");
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

Row run(const Pair& pair, Backend& backend, LlamaModel* ssm, std::size_t budget, bool cold, int max_new,
        TreeShape tree) {
  if (cold) evict_file(pair.llm_file);
  auto source = open_converted(pair.llm_file);
  LlamaModel llm(*source, backend, {.offload = budget > 0});
  if (budget > 0) page_models({&llm}, {.budget = budget, .evict = cold});
  EngineOptions e;
  e.limits.max_requests_per_batch = 1;
  e.tree = tree;
  Engine engine(llm, ssm ? std::vector<LlamaModel*>{ssm} : std::vector<LlamaModel*>{}, e);
  // Untimed: a resident model maps its pages in on first use, which is not decoding speed.
  engine.submit(pair.prompts.front(), {2, {}});
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  const OffloadStats warm = llm.paged() ? llm.paged()->stats() : OffloadStats{};
  std::vector<RequestId> ids;
  for (const auto& p : pair.prompts) ids.push_back(engine.submit(p, {max_new, {}}));
  Stopwatch clock;
  engine.run([](RequestId, std::span<const std::int32_t>) {});
  Row r;
  r.mode = ssm ? "speculative" : "incremental";
  r.seconds = clock.seconds();
  long long steps = 0, step_tokens = 0;
  for (auto id : ids) {
    const Request& q = engine.requests().request(id);
    if (q.state == RequestState::failed) throw Error("request failed: " + q.error);
    r.outputs.emplace_back(q.tokens.begin() + q.prompt_length, q.tokens.end());
    r.tokens += q.generated();
    steps += q.stats.llm_steps;
    for (int a : q.stats.accepted_per_step) step_tokens += a;
  }
  r.tokens_per_s = double(r.tokens) / r.seconds;
  if (steps > 0) r.accepted_per_step = double(step_tokens) / double(steps);
  if (llm.paged()) {
    r.offload = llm.paged()->stats();
    r.offload.streamed_bytes -= warm.streamed_bytes;
    r.offload.stall_seconds -= warm.stall_seconds;
  }
  return r;
}

// `format`: the LLM's weight format in its file; nullopt: f32 for the demo pairs, int4 for the
// random TinyLlama.
Pair make_pair(const std::string& name, const std::filesystem::path& dir, std::optional<WeightFormat> format) {
  Pair p;
  p.name = name;
  p.llm_file = dir / (name + ".banyan");
  std::printf("writing %s ...\n", p.llm_file.c_str());
  std::fflush(stdout);
  if (is_demo_pair(name)) {
    auto demo = open_demo_pair(name);
    if (!demo) throw Error("the demo models are missing from " + models_dir().string());
    p.format = format.value_or(WeightFormat::f32);
    write_converted(EncodedWeights(*demo->llm, {p.format, DType::f32}), p.llm_file);
    p.ssm = std::move(demo->ssm);
    p.prompts = std::move(demo->prompts);
  } else if (name == "tinyllama-1.1b") {
    const RandomWeights random(tinyllama_1b_shape(), 1);
    p.format = format.value_or(WeightFormat::q4);
    write_converted(EncodedWeights(random, {p.format, DType::f32}), p.llm_file);
    p.prompts = random_prompts(2, 16, tinyllama_1b_shape().vocab_size, 5);
  } else {
    throw cli::UsageError("unknown pair '" + name + "' (demo, demo-160m, tinyllama-1.1b)");
  }
  return p;
}

}  // namespace

int offload_benchmark(int argc, char** argv) {
  cli::Options o("bench offload", "[options]",
                 "Decoding at batch 1 with the LLM's weights offloaded (paged from a `banyan convert` file under a\n"
                 "memory budget) against the same LLM resident: tokens/s, MiB streamed per token, the share of time\n"
                 "compute waited for weights; and speculative decoding under the smallest budget.\n"
                 "Pairs: 'demo' (models/demo-llm, 25 MiB in f32, with models/demo-ssm), 'demo-160m' (the demo LLM\n"
                 "widened to llama-160m's size, 424 MiB in f32, decoding what the demo LLM decodes; with the demo SSM),\n"
                 "'tinyllama-1.1b' (random weights in int4; no SSM: a random LLM has no small model that predicts it).\n"
                 "Greedy outputs of every row are checked identical.");
  o.add("--pairs", "LIST", "pairs to run", "demo,demo-160m,tinyllama-1.1b");
  o.add("--dtype", "FORMAT", "the LLM's weight format (default: f32 for the demo pairs, int4 for tinyllama-1.1b)");
  o.add("--budgets", "LIST", "memory budgets, in percent of the LLM's weights (one too small to stream is skipped)",
        "50,35,25");
  o.add("--max-new-tokens", "N", "tokens per prompt", "64");
  o.flag("--cold", "evict streamed weights from the page cache too: every stream reads the disk");
  o.add("--device", "cpu|cuda", "the backend measured (on cuda, streamed units are copied from pinned host memory)", "cpu");
  o.add("--threads", "N", "CPU threads", "2");
  o.add("--tree-width", "W", "speculation: the SSM's token tree, beams", "1");
  o.add("--tree-depth", "D", "speculation: tokens speculated along each beam", "4");
  o.add("--out", "FILE", "JSON result file", "bench-offload.json");
  if (!o.parse(argc, argv)) return 0;

  const bool cold = o.has("--cold");
  const std::optional<WeightFormat> format =
      o.has("--dtype") ? std::optional(cli::format_option(o, "--dtype")) : std::nullopt;
  const int max_new = o.integer("--max-new-tokens");
  const TreeShape tree{o.integer("--tree-width"), o.integer("--tree-depth")};
  const std::string device = cli::device_option(o);
  auto backend = make_backend(device, o.integer("--threads"));
  std::printf("backend: %s\n", backend->name().c_str());
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("banyan-offload-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  nlohmann::json rows = nlohmann::json::array();
  try {
    for (const auto& name : o.list("--pairs")) {
      const Pair pair = make_pair(name, dir, format);
      std::size_t weights = 0;
      {
        auto source = open_converted(pair.llm_file);
        for (const auto& t : source->tensor_names()) weights += source->read_encoded(t)->bytes.size();
      }
      std::unique_ptr<LlamaModel> ssm = pair.ssm ? std::make_unique<LlamaModel>(*pair.ssm, *backend) : nullptr;
      std::printf("\n%s: %.1f MiB of weights%s\n", name.c_str(), double(weights) / (1 << 20),
                  cold ? ", cold (page cache evicted)" : ", warm (the file stays in the page cache)");
      std::printf("%-12s %7s | %9s %8s | %11s %7s | %9s %9s\n", "mode", "budget", "tok/s", "ratio", "MiB/token",
                  "stall", "resident", "reserve");
      const Row resident = run(pair, *backend, nullptr, 0, cold, max_new, tree);
      std::vector<Row> table = {resident};
      int smallest = 100;  // the smallest budget the model streams under
      std::vector<std::string> skipped;
      for (const auto& b : o.list("--budgets")) {
        const int percent = std::stoi(b);
        try {
          table.push_back(run(pair, *backend, nullptr, weights * std::size_t(percent) / 100, cold, max_new, tree));
        } catch (const Error& e) {
          skipped.push_back(b + "%: " + e.what());
          continue;
        }
        table.back().budget_percent = percent;
        smallest = std::min(smallest, percent);
      }
      if (ssm) {
        table.push_back(run(pair, *backend, ssm.get(), 0, cold, max_new, tree));
        if (smallest < 100) {
          table.push_back(run(pair, *backend, ssm.get(), weights * std::size_t(smallest) / 100, cold, max_new, tree));
          table.back().budget_percent = smallest;
        }
      }
      // Paging changes no arithmetic: every row's output is its mode's resident output. Greedy
      // speculative output is the incremental one for float weights; with compressed weights a
      // near-tie may go the other way (bench specinfer), which is counted.
      const auto resident_of = [&](const std::string& mode) {
        return std::find_if(table.begin(), table.end(), [&](const Row& r) { return r.mode == mode && r.budget_percent == 100; });
      };
      int diverging = 0;
      if (ssm) {
        const auto& spec = resident_of("speculative")->outputs;
        for (std::size_t i = 0; i < spec.size(); ++i) diverging += spec[i] != resident.outputs[i];
        if (diverging > 0 && is_float_format(pair.format)) throw Error(name + ": speculative output differs from incremental");
      }
      const Row* offloaded_incremental = nullptr;
      for (const Row& r : table) {
        if (r.outputs != resident_of(r.mode)->outputs)
          throw Error(name + ": the " + r.mode + " output under " + std::to_string(r.budget_percent) +
                      "% differs from the resident run's");
        if (r.mode == "incremental" && r.budget_percent == smallest && smallest < 100) offloaded_incremental = &r;
        const double per_token = double(r.offload.streamed_bytes) / (1 << 20) / double(std::max(1LL, r.tokens));
        const double stall = r.offload.stall_seconds / r.seconds;
        std::printf("%-12s %6d%% | %9.1f %7.2fx | %11.1f %6.0f%% | %6.0f MiB %5.0f MiB\n", r.mode.c_str(), r.budget_percent,
                    r.tokens_per_s, r.tokens_per_s / resident.tokens_per_s, per_token, 100 * stall,
                    double(r.budget_percent == 100 ? weights : r.offload.resident_bytes) / (1 << 20),
                    double(r.offload.reserve_bytes) / (1 << 20));
        rows.push_back({{"pair", name},
                        {"llm_dtype", format_name(pair.format)},
                        {"mode", r.mode},
                        {"budget_percent", r.budget_percent},
                        {"cold", cold},
                        {"tokens", r.tokens},
                        {"tokens_per_s", r.tokens_per_s},
                        {"ratio_to_resident_incremental", r.tokens_per_s / resident.tokens_per_s},
                        {"accepted_tokens_per_step", r.accepted_per_step},
                        {"streamed_bytes_per_token", double(r.offload.streamed_bytes) / double(std::max(1LL, r.tokens))},
                        {"stall_share", stall},
                        {"resident_bytes", r.budget_percent == 100 ? weights : r.offload.resident_bytes},
                        {"reserve_bytes", r.offload.reserve_bytes},
                        {"disk_bytes", weights}});
      }
      for (const auto& why : skipped) std::printf("skipped %s\n", why.c_str());
      if (diverging > 0)
        std::printf("%d of %zu speculative requests diverge from incremental at a near-tie (%s weights)\n", diverging,
                    resident.outputs.size(), std::string(format_name(pair.format)).c_str());
      if (ssm && offloaded_incremental && smallest < 100) {
        const Row& spec = table.back();
        std::printf("offloaded (%d%%) speculative vs offloaded incremental: %.2fx (%.2f tokens per LLM step)\n", smallest,
                    spec.tokens_per_s / offloaded_incremental->tokens_per_s, spec.accepted_per_step);
      }
      std::fflush(stdout);
      std::filesystem::remove(pair.llm_file);
    }
  } catch (...) {
    std::filesystem::remove_all(dir);
    throw;
  }
  std::filesystem::remove_all(dir);
  write_json(o.text("--out"), {{"machine", machine_description()},
                               {"device", device == "cuda" ? cuda_description() : "cpu"},
                               {"threads", o.integer("--threads")},
                               {"rows", rows}});
  return 0;
}

}  // namespace banyan::bench
