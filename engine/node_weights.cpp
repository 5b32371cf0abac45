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
  if (paging) {
    r.budget_bytes = budget;
    r.paging = paging->stats();
  }
  return r;
}

}  // namespace banyan
