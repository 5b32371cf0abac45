#pragma once
// The messages Banyan's actors exchange and the atoms that name commands. Every type has an
// `inspect`; configure_actor_system announces them all to CAF (needed for the ones that cross
// nodes).
#include <caf/all.hpp>

#include "actors/message_types.hpp"
#include "engine/ssm_work.hpp"
#include "model/memory_report.hpp"

namespace banyan {

struct NodeWeights;  // engine/node_weights.hpp: handed out within a process only

// ForwardBatch lives in model/ (no CAF there); its inspect sits here, found by ADL.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ForwardBatch& x) {
  return f(caf::meta::type_name("banyan.ForwardBatch"), x.tokens, x.positions, x.slots, x.cache_rows, x.visible,
           x.tree_masks, x.logit_rows, x.summary_k, x.nucleus_temperature, x.nucleus_top_p, x.kv_blocks,
           x.kv_block_begin, x.kv_block_end);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, KvLayout& x) {
  return f(caf::meta::type_name("banyan.KvLayout"), x.slots, x.capacity, x.paging.block_rows, x.paging.blocks);
}


// The SSMs' work and trees (engine/ssm_work.hpp) likewise.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TreeShape& x) {
  return f(caf::meta::type_name("banyan.TreeShape"), x.width, x.depth);
}

// A node's memory report (model/memory_report.hpp) travels to the head's /metrics.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, OffloadStats& x) {
  return f(caf::meta::type_name("banyan.OffloadStats"), x.resident_bytes, x.reserve_bytes, x.host_bytes,
           x.disk_bytes, x.streamed_bytes, x.stall_seconds, x.units_streamed);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, MemoryReport& x) {
  return f(caf::meta::type_name("banyan.MemoryReport"), x.weight_bytes, x.budget_bytes, x.paging);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SamplingParams& x) {
  return f(caf::meta::type_name("banyan.SamplingParams"), x.temperature, x.top_k, x.top_p, x.seed);
}

// A draft's q is shared by the drafts of one node in memory; on the wire each carries a copy.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenTree::Draft& x) {
  std::vector<float> q = x.q ? *x.q : std::vector<float>{};
  return f(caf::meta::type_name("banyan.TokenTree.Draft"), x.child, q, caf::meta::load_callback([&]() -> caf::error {
             x.q = std::make_shared<const std::vector<float>>(std::move(q));
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenTree::Node& x) {
  return f(caf::meta::type_name("banyan.TokenTree.Node"), x.token, x.parent, x.depth, x.children, x.drafts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SsmCommit& x) {
  return f(caf::meta::type_name("banyan.SsmCommit"), x.slot, x.root_row, x.accepted, x.blocks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SsmFeed& x) {
  return f(caf::meta::type_name("banyan.SsmFeed"), x.slot, x.begin, x.tokens, x.blocks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SsmJob& x) {
  return f(caf::meta::type_name("banyan.SsmJob"), x.slot, x.root_row, x.first, x.tokens, x.shape, x.sampling, x.rng,
           x.blocks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SsmWork& x) {
  return f(caf::meta::type_name("banyan.SsmWork"), x.commits, x.prefill, x.jobs);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SsmTrees& x) {
  return f(caf::meta::type_name("banyan.SsmTrees"), x.trees, x.rngs);
}

}  // namespace banyan

// The memory actor hands its process's actors the weights themselves: never serialized.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<banyan::NodeWeights>)

namespace banyan::actors {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, GenerateRequest& x) {
  return f(caf::meta::type_name("banyan.GenerateRequest"), x.prompt, x.max_new_tokens, x.temperature, x.top_p, x.top_k,
           x.seed, x.speculate);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenChunk& x) {
  return f(caf::meta::type_name("banyan.TokenChunk"), x.request, x.tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TextGenerateRequest& x) {
  return f(caf::meta::type_name("banyan.TextGenerateRequest"), x.prompt, x.params);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TextChunk& x) {
  return f(caf::meta::type_name("banyan.TextChunk"), x.request, x.text, x.tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, KvMoves& x) {
  return f(caf::meta::type_name("banyan.KvMoves"), x.slot, x.from, x.to, x.blocks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, BulkRef& x) {
  return f(caf::meta::type_name("banyan.BulkRef"), x.tag, x.reply_host, x.reply_port, x.reply_instance,
           x.reply_tag);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageForward& x) {
  return f(caf::meta::type_name("banyan.StageForward"), x.batch, x.activations, x.kv_moves, x.bulk, x.round);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageLogits& x) {
  return f(caf::meta::type_name("banyan.StageLogits"), x.logits, x.bulk_tag);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepResult& x) {
  return f(caf::meta::type_name("banyan.StepResult"), x.chunks, x.error);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RequestDone& x) {
  return f(caf::meta::type_name("banyan.RequestDone"), x.request, x.finish_reason, x.error, x.prompt_tokens,
           x.cached_prompt_tokens, x.generated_tokens, x.llm_steps, x.accepted_per_step);
}

using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using kv_cache_atom = caf::atom_constant<caf::atom("kvcache")>;
using step_atom = caf::atom_constant<caf::atom("step")>;
using layers_atom = caf::atom_constant<caf::atom("layers")>;
using stage_atom = caf::atom_constant<caf::atom("stage")>;
using health_atom = caf::atom_constant<caf::atom("health")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using data_plane_atom = caf::atom_constant<caf::atom("dataplane")>;
using weights_atom = caf::atom_constant<caf::atom("weights")>;
using memory_atom = caf::atom_constant<caf::atom("memory")>;

// What every Banyan actor system is configured with: every message type above announced, and
// the sharing scheduler, whose idle workers wake as soon as a message arrives (work stealing's
// idle workers poll every 10 ms: that cost about 10 ms on each hop between two processes and
// put a 70% communication share on a pipeline step; bench parallel).
void configure_actor_system(caf::actor_system_config& config);

}  // namespace banyan::actors
