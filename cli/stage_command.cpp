// banyan stage: one pipeline stage of the LLM in its own process, for a `banyan serve
// --remote-stage HOST:PORT` elsewhere (another process or node). It loads only its layers, serves
// them as a node of its own on its port, and passes its activations to the next stage (--next)
// or, being the last, answers the logits. SIGTERM or SIGINT stops it.
#include "cli/cluster_node.hpp"
#include "cli/commands.hpp"
#include "cli/option_types.hpp"

namespace banyan::cli {

namespace {

LayerRange layer_option(const std::string& value) {
  const auto dash = value.find('-');
  try {
    if (dash != std::string::npos) return {std::stoi(value.substr(0, dash)), std::stoi(value.substr(dash + 1)) + 1};
  } catch (const std::exception&) {
  }
  throw UsageError("--layers must be FIRST-LAST (0-based, inclusive), got '" + value + "'");
}

}  // namespace

int stage_command(int argc, char** argv) {
  Options o("stage", "--model PATH --layers FIRST-LAST [--port N] [--next HOST:PORT] [options]",
            "Runs layers FIRST..LAST of the LLM as one pipeline stage, for a `banyan serve --remote-stage\n"
            "HOST:PORT` in another process or on another node: that server keeps the layers before FIRST. A\n"
            "stage that does not end the model names the stage after it with --next. Prints the address it\n"
            "serves on once it is ready; SIGTERM or SIGINT stops it. A stage after it that goes away is\n"
            "reconnected to when it comes back.");
  add_model_options(o);
  o.add("--layers", "FIRST-LAST", "the decoder layers this stage holds (0-based, inclusive)");
  o.add("--host", "ADDRESS", "address to serve the stage on", "127.0.0.1");
  o.add("--port", "N", "port to serve the stage on; 0 picks a free one", "0");
  o.add("--next", "HOST:PORT", "the stage after this one (default: this stage ends the model)");
  o.add("--data-port", "N", "also listen on a data plane (UCX) here for activations and logits; 0: a free port");
  if (!o.parse(argc, argv)) return 0;
  if (!o.positional().empty()) throw UsageError("unexpected argument '" + o.positional()[0] + "'");
  if (!o.has("--layers")) throw UsageError("--layers is required");
  const LayerRange layers = layer_option(o.text("--layers"));

  ModelChoice choice = model_choice(o, false);
  choice.stages = std::vector<StageLoad>{{.layers = layers}};
  std::optional<actors::RemoteStage> next;
  if (o.has("--next")) {
    const auto [host, port] = host_and_port(o.text("--next"), "--next");
    next = actors::RemoteStage{{"", host, port}, layers.end};
  }
  const auto runs = [&](std::vector<std::shared_ptr<PipelineStage>> stages) {
    return std::vector<actors::StageRun>{{std::move(stages), next}};
  };
  NodeListen listen{o.text("--host"), o.text("--host"), o.integer("--port"), -1};
  if (o.has("--data-port")) listen.data_port = o.integer("--data-port");
  return serve_stage_node("stage", choice, runs, listen, make_data_plane(listen));
}

}  // namespace banyan::cli
