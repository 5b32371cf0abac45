#include "engine/node_weights.hpp"

namespace banyan {

std::vector<const LlamaModel*> NodeWeights::llm_models() const {
  std::vector<const LlamaModel*> out;
  if (llm) out.push_back(llm.get());
  for (const auto& stage : llm_stages)
    for (int i = 0; i < stage->tensor_shards(); ++i) out.push_back(&stage->shard(i));
  return out;
}

MemoryReport NodeWeights::report() const {
  MemoryReport r;
  for (const LlamaModel* m : llm_models()) r.weight_bytes += m->weight_bytes();
  for (const auto& ssm : ssms) r.weight_bytes += ssm->weight_bytes();
  if (!pagings.empty()) {
    r.budget_bytes = budget;
    r.paging = paging_stats();
  }
  return r;
}

OffloadStats NodeWeights::paging_stats() const {
  OffloadStats sum;
  for (const auto& p : pagings) {
    const OffloadStats s = p->stats();
    sum.resident_bytes += s.resident_bytes;
    sum.reserve_bytes += s.reserve_bytes;
    sum.host_bytes += s.host_bytes;
    sum.disk_bytes += s.disk_bytes;
    sum.streamed_bytes += s.streamed_bytes;
    sum.stall_seconds += s.stall_seconds;
    sum.units_streamed += s.units_streamed;
  }
  return sum;
}

}  // namespace banyan
