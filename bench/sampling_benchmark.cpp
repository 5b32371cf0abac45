// bench sampling: the host's cost of turning a row of logits into a sampling distribution
// (model/sampler.hpp), per row, for rows of LLaMA's 32000 logits from peaked to flat, against a
// full sort of the row measured in the same run (the baseline): top-p nuclei of a few tokens to
// most of the vocabulary, top-k, plain temperature sampling, and the nucleus read from a
// summary of the best 64 tokens (model/logit_summary.hpp) where it lies within them.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>

#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "cli/options.hpp"
#include "model/logit_summary.hpp"

namespace banyan::bench {

namespace {

// The best time of `rounds` rounds of `calls` calls of fn, per call, in ms.
template <typename F>
double best_ms(int rounds, int calls, F&& fn) {
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    Stopwatch clock;
    for (int i = 0; i < calls; ++i) fn();
    best = std::min(best, clock.seconds() / calls);
  }
  return 1e3 * best;
}

}  // namespace

int sampling_benchmark(int argc, char** argv) {
  cli::Options o("bench sampling", "[options]",
                 "Milliseconds per row to form the sampling distribution of a row of logits on the host (random normal\n"
                 "logits of several spreads), against a full sort of the row in the same run; with the nucleus size, and\n"
                 "for nuclei within the best 64 tokens the time from a logit summary (the summary itself formed where the\n"
                 "logits are: on a GPU, by a kernel).");
  o.add("--vocab", "N", "logits per row", "32000");
  o.add("--rounds", "N", "rounds per figure (the best is kept)", "5");
  o.add("--out", "FILE", "JSON result file", "bench-sampling.json");
  if (!o.parse(argc, argv)) return 0;
  const int vocab = o.integer("--vocab"), rounds = o.integer("--rounds");
  if (vocab < 64 || rounds < 1) throw cli::UsageError("--vocab must be 64 or more, --rounds 1 or more");

  nlohmann::json rows = nlohmann::json::array();
  std::mt19937 gen(1);
  std::printf("%-7s %-25s | %10s %10s | %9s | %12s\n", "spread", "sampling", "ms/row", "vs sort", "nucleus", "from summary");
  for (const float sigma : {1.0f, 3.0f, 6.0f}) {
    std::normal_distribution<float> normal(0.0f, sigma);
    std::vector<float> logits(static_cast<std::size_t>(vocab));
    for (float& l : logits) l = normal(gen);
    std::vector<std::int32_t> order(logits.size());
    const double sort_ms = best_ms(rounds, 10, [&] {
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
        return logits[std::size_t(a)] > logits[std::size_t(b)] || (logits[std::size_t(a)] == logits[std::size_t(b)] && a < b);
      });
    });
    for (const SamplingParams params : {SamplingParams{0.7f, 0, 0.9f, 0}, SamplingParams{1.0f, 0, 0.95f, 0},
                                        SamplingParams{1.0f, 40, 0.9f, 0}, SamplingParams{1.0f, 0, 1.0f, 0}}) {
      std::vector<float> probs;
      const double ms = best_ms(rounds, 10, [&] { sampling_distribution(logits, params, probs); });
      const auto kept = std::count_if(probs.begin(), probs.end(), [](float p) { return p > 0; });
      // From a summary of the best 64 tokens, where the nucleus lies within them.
      double summary_ms = -1;
      if (samples_nucleus(params)) {
        std::vector<float> summary(std::size_t(summary_width(kMaxSummaryTokens)));
        const float t = params.temperature;
        summarise_logits(logits, vocab, kMaxSummaryTokens, std::span(&t, 1), summary);
        if (!nucleus_beyond_summary(summary, kMaxSummaryTokens, t, params.top_p)) {
          const LogitRows row(summary, vocab, kMaxSummaryTokens, std::span(&t, 1), std::span(&params.top_p, 1));
          summary_ms = best_ms(rounds, 10, [&] { row.distribution(0, params, probs); });
        }
      }
      char label[64];
      std::snprintf(label, sizeof label, "T %.1f top_k %d top_p %.2f", params.temperature, params.top_k, params.top_p);
      std::printf("%-7.0f %-25s | %10.3f %9.2fx | %9ld | %12s\n", sigma, label, ms, ms / sort_ms, long(kept),
                  summary_ms < 0 ? "-" : (std::to_string(summary_ms).substr(0, 6) + " ms").c_str());
      rows.push_back({{"sigma", sigma}, {"temperature", params.temperature}, {"top_k", params.top_k}, {"top_p", params.top_p},
                      {"ms_per_row", ms}, {"full_sort_ms", sort_ms}, {"ratio_to_full_sort", ms / sort_ms},
                      {"nucleus", kept}, {"from_summary_ms", summary_ms}});
    }
    std::printf("%-7.0f %-25s | %10.3f %9.2fx |\n", sigma, "(full sort: baseline)", sort_ms, 1.0);
  }
  write_json(o.text("--out"), {{"machine", machine_description()}, {"vocab", vocab}, {"rows", rows}});
  return 0;
}

}  // namespace banyan::bench
