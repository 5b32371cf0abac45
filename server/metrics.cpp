#include "server/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace banyan::server {

namespace {

std::string number(double x) {
  if (std::isinf(x)) return "+Inf";
  char s[32];
  std::snprintf(s, sizeof s, "%.9g", x);
  return s;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double value, const std::string& labels = "") {
  out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + number(value) + "\n";
}

std::string node_label(const std::string& node) {
  std::string escaped;
  for (char c : node) escaped += c == '"' || c == '\\' ? std::string("\\") + c : c == '\n' ? "\\n" : std::string(1, c);
  return "node=\"" + escaped + "\"";
}

void render_memory(std::string& out, const std::vector<NodeMemory>& nodes) {
  header(out, "banyan_node_weight_bytes", "gauge",
         "Every weight a node holds (the LLM or its stages there, the SSMs), resident or streaming.");
  for (const auto& [node, r] : nodes) sample(out, "banyan_node_weight_bytes", double(r.weight_bytes), node_label(node));
  std::vector<const NodeMemory*> offloaded;
  for (const auto& n : nodes)
    if (n.second.budget_bytes > 0) offloaded.push_back(&n);
  if (offloaded.empty()) return;
  header(out, "banyan_memory_budget_bytes", "gauge", "A node's memory budget for its offloaded weights.");
  for (const NodeMemory* n : offloaded)
    sample(out, "banyan_memory_budget_bytes", double(n->second.budget_bytes), node_label(n->first));
  header(out, "banyan_weight_bytes", "gauge",
         "A node's offloaded weights by tier: resident in compute memory, the streaming reserve, waiting in "
         "pinned host memory (a GPU node), and on disk (all).");
  for (const NodeMemory* n : offloaded) {
    const OffloadStats& p = n->second.paging;
    const std::string node = node_label(n->first) + ",";
    sample(out, "banyan_weight_bytes", double(p.resident_bytes), node + "tier=\"resident\"");
    sample(out, "banyan_weight_bytes", double(p.reserve_bytes), node + "tier=\"streaming\"");
    sample(out, "banyan_weight_bytes", double(p.host_bytes), node + "tier=\"host\"");
    sample(out, "banyan_weight_bytes", double(p.disk_bytes), node + "tier=\"disk\"");
  }
  header(out, "banyan_weights_streamed_bytes_total", "counter", "Weight bytes streamed in from disk.");
  for (const NodeMemory* n : offloaded)
    sample(out, "banyan_weights_streamed_bytes_total", double(n->second.paging.streamed_bytes), node_label(n->first));
  header(out, "banyan_weight_stall_seconds_total", "counter", "Time compute spent paging weights (waiting for them, dropping them).");
  for (const NodeMemory* n : offloaded)
    sample(out, "banyan_weight_stall_seconds_total", n->second.paging.stall_seconds, node_label(n->first));
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::size_t b = 0;
  while (b < bounds_.size() && value > bounds_[b]) ++b;
  ++counts_[b];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name) const {
  long long cumulative = 0;
  for (std::size_t b = 0; b <= bounds_.size(); ++b) {
    cumulative += counts_[b];
    const double le = b < bounds_.size() ? bounds_[b] : INFINITY;
    sample(out, name + "_bucket", double(cumulative), "le=\"" + number(le) + "\"");
  }
  sample(out, name + "_sum", sum_);
  sample(out, name + "_count", double(count_));
}

std::string ServerMetrics::render(const actors::SchedulerGauges& gauges, std::size_t running, const OptionalMetrics& more) const {
  std::string out;
  header(out, "banyan_requests_total", "counter", "Generations that ended, by finish reason.");
  for (const char* reason : {"stop", "length", "cancelled", "error"}) {
    auto it = requests.find(reason);
    sample(out, "banyan_requests_total", it == requests.end() ? 0.0 : double(it->second),
           std::string("finish_reason=\"") + reason + "\"");
  }
  header(out, "banyan_rejected_requests_total", "counter", "Requests refused before they ran, by error code.");
  for (const auto& [code, n] : rejected) sample(out, "banyan_rejected_requests_total", double(n), "code=\"" + code + "\"");
  header(out, "banyan_prompt_tokens_total", "counter", "Prompt tokens of the generations started.");
  sample(out, "banyan_prompt_tokens_total", double(prompt_tokens));
  header(out, "banyan_generated_tokens_total", "counter", "Tokens generated and sent to clients.");
  sample(out, "banyan_generated_tokens_total", double(generated_tokens));
  header(out, "banyan_time_to_first_token_seconds", "histogram", "From a request's arrival to its first token.");
  time_to_first_token_s.render(out, "banyan_time_to_first_token_seconds");
  header(out, "banyan_inter_token_latency_seconds", "histogram", "Between a request's successive tokens.");
  inter_token_latency_s.render(out, "banyan_inter_token_latency_seconds");
  header(out, "banyan_accepted_tokens_per_step", "histogram", "Tokens committed per LLM step, per request.");
  accepted_per_step.render(out, "banyan_accepted_tokens_per_step");
  header(out, "banyan_running_requests", "gauge", "Generations started and not yet ended.");
  sample(out, "banyan_running_requests", double(running));
  header(out, "banyan_queue_length", "gauge", "Requests waiting for a KV-cache slot.");
  sample(out, "banyan_queue_length", gauges.queued.load());
  header(out, "banyan_kv_cache_slots_used", "gauge", "KV-cache slots held by requests.");
  sample(out, "banyan_kv_cache_slots_used", gauges.active.load());
  header(out, "banyan_kv_cache_slots", "gauge", "KV-cache slots in all (max_requests_per_batch).");
  sample(out, "banyan_kv_cache_slots", gauges.slots.load());
  if (gauges.kv_blocks > 0) {
    header(out, "banyan_kv_cache_blocks", "gauge", "Blocks of the paged KV cache.");
    sample(out, "banyan_kv_cache_blocks", gauges.kv_blocks.load());
    header(out, "banyan_kv_cache_blocks_used", "gauge", "Blocks of the paged KV cache held by requests.");
    sample(out, "banyan_kv_cache_blocks_used", gauges.kv_blocks_used.load());
    header(out, "banyan_preemptions_total", "counter",
           "Times a request gave its KV blocks back for another's and waited to be prefilled again.");
    sample(out, "banyan_preemptions_total", double(gauges.preemptions.load()));
    header(out, "banyan_kv_cache_blocks_cached", "gauge",
           "Blocks of the paged KV cache the prefix cache knows (held by requests or kept for later ones).");
    sample(out, "banyan_kv_cache_blocks_cached", gauges.kv_blocks_cached.load());
    header(out, "banyan_prefix_cache_tokens_total", "counter",
           "Tokens whose keys and values came from the prefix cache instead of being computed.");
    sample(out, "banyan_prefix_cache_tokens_total", double(gauges.cached_tokens.load()));
  }
  header(out, "banyan_scheduler_steps_total", "counter", "Engine steps run.");
  sample(out, "banyan_scheduler_steps_total", double(gauges.steps.load()));
  if (more.memory) render_memory(out, *more.memory);
  if (const DataPlaneBytes* plane = more.data_plane) {
    header(out, "banyan_data_plane_bytes_total", "counter",
           "Activation and logit bytes moved over the data plane (UCX) to and from other nodes.");
    sample(out, "banyan_data_plane_bytes_total", double(plane->sent), "direction=\"sent\"");
    sample(out, "banyan_data_plane_bytes_total", double(plane->received), "direction=\"received\"");
  }
  return out;
}

}  // namespace banyan::server
