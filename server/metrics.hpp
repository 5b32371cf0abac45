#pragma once
// The server's Prometheus metrics: request and token counters, latency histograms, and the
// scheduler's gauges, rendered as Prometheus' text format for GET /metrics. Not thread-safe:
// the gateway updates and renders them on its one network thread.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "actors/generations.hpp"
#include "model/memory_report.hpp"

namespace banyan::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // The _bucket, _sum and _count lines of `name`.
  void render(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<long long> counts_;  // per bucket, not cumulative; one more for +Inf
  double sum_ = 0;
  long long count_ = 0;
};

// Activation and logit bytes this process moved over its data plane (UCX) to and from other nodes.
struct DataPlaneBytes {
  std::uint64_t sent = 0, received = 0;
};

// What one node's memory holds: its name and its memory actor's report.
using NodeMemory = std::pair<std::string, MemoryReport>;

// What only some servers have, for render(): null where absent.
struct OptionalMetrics {
  const std::vector<NodeMemory>* memory = nullptr;  // this node's, and on a cluster's head the others' too
  const DataPlaneBytes* data_plane = nullptr;  // a cluster node's data plane
};

struct ServerMetrics {
  std::map<std::string, long long> requests;  // by finish reason: stop, length, cancelled, error
  std::map<std::string, long long> rejected;  // requests refused before running, by error code
  long long prompt_tokens = 0;
  long long generated_tokens = 0;
  Histogram time_to_first_token_s{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  Histogram inter_token_latency_s{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};
  Histogram accepted_per_step{{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8}};

  // Everything, with the scheduler's gauges, the generations now running and what else there is.
  std::string render(const actors::SchedulerGauges& gauges, std::size_t running, const OptionalMetrics& more = {}) const;
};

}  // namespace banyan::server
