#pragma once
// The typed interfaces of the serving actors: every message each one accepts and what it answers.
#include <caf/all.hpp>

#include "actors/messages.hpp"

namespace banyan::actors {

// One per generation: forwards the scheduler's TokenChunks and its RequestDone to the client
// that asked. A cancel_atom from the client stops the generation.
using request_actor = caf::typed_actor<caf::reacts_to<TokenChunk>, caf::reacts_to<RequestDone>,
                                       caf::reacts_to<cancel_atom>>;

// One per served model: owns its requests and has its step worker run the steps (SSMs, then
// the LLM, then verification), streaming committed tokens to each request's actor. It never
// blocks: submissions and cancels that arrive during a step are applied right after it.
using scheduler_actor = caf::typed_actor<
    // Queues a generation whose tokens go to the given request actor; answers its request id.
    caf::replies_to<GenerateRequest, request_actor>::with<std::uint64_t>,
    caf::reacts_to<cancel_atom, std::uint64_t>>;

// The front door remote clients reach (published on the actor port): takes a text prompt and a
// client actor, answers the generation's request actor (send it a cancel_atom to stop), and
// streams TextChunks, then the RequestDone, to the client.
using text_service_actor = caf::typed_actor<caf::replies_to<TextGenerateRequest, caf::actor>::with<request_actor>>;

// One pipeline stage of the LLM (llm_shard): owns a slice of its layers and their KV cache.
// A StageForward goes through its layers and on to the next stage, in this process or another;
// the last stage answers the logits to whoever sent the first. kv_cache_atom (a KvLayout)
// creates the cache of every stage down the chain (answered by the last with its bytes);
// layers_atom answers the stage's own layers [first, end). A stage whose tensor shards are
// spread over processes sends both to its shards elsewhere, which answer it alone (their
// StageLogits are empty).
using llm_stage_actor = caf::typed_actor<caf::replies_to<StageForward>::with<StageLogits>,
                                         caf::replies_to<kv_cache_atom, KvLayout>::with<std::uint64_t>,
                                         caf::replies_to<layers_atom>::with<std::int32_t, std::int32_t>>;

// A link from a stage to the stage after it in another process (actors/node_link.hpp): takes
// what a stage takes and passes it on, and ticks itself to reconnect and to send heartbeats.
using node_link_actor = llm_stage_actor::extend<caf::reacts_to<tick_atom>>;

// One per process of a cluster, published on its port (actors/node.hpp): hands out its stage
// that starts at a layer (stage_atom, first layer), lists the first layers of its stages, says
// where its data plane listens (host, port; port 0: it has none), and answers heartbeats with
// what its links to other nodes find wrong (empty: nothing), and what its memory holds (an empty
// report: it has no memory actor).
using node_actor = caf::typed_actor<caf::replies_to<stage_atom, std::int32_t>::with<llm_stage_actor>,
                                    caf::replies_to<layers_atom>::with<std::vector<std::int32_t>>,
                                    caf::replies_to<data_plane_atom>::with<std::string, std::int32_t>,
                                    caf::replies_to<health_atom>::with<std::vector<std::string>>,
                                    caf::replies_to<memory_atom>::with<MemoryReport>>;

// One small speculative model (ssm): owns the model and its KV cache. An SsmWork applies last
// step's commits, takes in prompt chunks and is answered with one tree per job.
// kv_cache_atom (a KvLayout) creates the cache.
using ssm_actor = caf::typed_actor<caf::replies_to<SsmWork>::with<SsmTrees>,
                                   caf::replies_to<kv_cache_atom, KvLayout>::with<std::uint64_t>>;

// One per process that holds models (memory, actors/memory.hpp): owns the node's weights and
// hands them to the actors of this process that compute with them (weights_atom); reports what
// lies in each memory tier (memory_atom).
using memory_actor = caf::typed_actor<caf::replies_to<weights_atom>::with<std::shared_ptr<NodeWeights>>,
                                      caf::replies_to<memory_atom>::with<MemoryReport>>;

// The scheduler's own thread for compute: runs one engine step per step_atom and answers what
// it committed. Its handle never leaves the scheduler.
using step_worker_actor = caf::typed_actor<caf::replies_to<step_atom>::with<StepResult>>;

}  // namespace banyan::actors
