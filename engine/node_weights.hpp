#pragma once
// The weights one process holds: the LLM (whole, or the pipeline stages it runs here), the
// SSMs, the backends they compute on, and the paging of the offloaded ones under the node's
// budget (one paging per backend: tensor shards held side by side each stream their own part). The memory actor (actors/memory) owns it and hands it out; no CAF here.
#include <memory>
#include <vector>

#include "engine/device_backend.hpp"
#include "engine/pipeline_stage.hpp"
#include "model/llama_model.hpp"
#include "model/memory_report.hpp"

namespace banyan {

struct NodeWeights {
  // The backends come first: destroyed last, after the models that compute on them.
  std::unique_ptr<Backend> backend;
  ShardBackends shards;  // tensor shards held side by side: a backend each (engine/device_backend.hpp)
  std::shared_ptr<LlamaModel> llm;                        // the whole LLM, or
  std::vector<std::shared_ptr<PipelineStage>> llm_stages;  // the stages of it held here, the first first
  std::vector<std::shared_ptr<LlamaModel>> ssms;
  // The offloaded models' pagings, one per backend they compute on; empty: every weight resident.
  std::vector<std::shared_ptr<WeightPaging>> pagings;
  std::size_t budget = 0;  // the pagings' budget, all together

  // What the pagings did, summed (stall seconds: each shard's waiting, added up).
  OffloadStats paging_stats() const;

  // The LLM's models held here (the whole one, or every shard of every stage).
  std::vector<const LlamaModel*> llm_models() const;
  MemoryReport report() const;
};

}  // namespace banyan
