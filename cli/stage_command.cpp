// banyan stage: one pipeline stage of the LLM in its own process, for a `banyan serve
// --remote-stage HOST:PORT` elsewhere (another process or node). It loads only its layers, serves
// them as a stage actor on its port, and passes its activations to the next stage (--next) or,
// being the last, answers the logits. SIGTERM or SIGINT stops it.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <csignal>
#include <iostream>

#include "actors/llm_stage.hpp"
#include "actors/messages.hpp"
#include "cli/commands.hpp"
#include "cli/model_setup.hpp"
#include "cli/option_types.hpp"
#include "model/error.hpp"

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
            "serves on once it is ready; SIGTERM or SIGINT stops it.");
  add_model_options(o);
  o.add("--layers", "FIRST-LAST", "the decoder layers this stage holds (0-based, inclusive)");
  o.add("--host", "ADDRESS", "address to serve the stage on", "127.0.0.1");
  o.add("--port", "N", "port to serve the stage on; 0 picks a free one", "0");
  o.add("--next", "HOST:PORT", "the stage after this one (default: this stage ends the model)");
  if (!o.parse(argc, argv)) return 0;
  if (!o.positional().empty()) throw UsageError("unexpected argument '" + o.positional()[0] + "'");
  if (!o.has("--layers")) throw UsageError("--layers is required");
  const LayerRange layers = layer_option(o.text("--layers"));

  // The signals are waited for below; every thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const ModelChoice choice = model_choice(o, false);
  auto backend = make_backend(choice.device, choice.threads);
  auto weights = open_weights(choice.llm.path);
  auto model = std::make_shared<LlamaModel>(*weights, *backend, choice.llm.options, LlamaModel::Progress{}, layers);

  caf::actor_system_config config;
  actors::add_message_types(config);
  config.load<caf::io::middleman>();
  auto system = std::make_unique<caf::actor_system>(config);
  actors::llm_stage_actor next;
  if (o.has("--next")) {
    const auto [host, port] = host_and_port(o.text("--next"), "--next");
    next = actors::connect_stage(*system, host, port);
  }
  auto stage = actors::spawn_llm_stages(*system, {model}, next).front();
  next = nullptr;
  const int port = actors::publish_stage(*system, stage, o.text("--host"), o.integer("--port"));
  std::cout << "banyan stage: layers " << model->first_layer() << "-" << model->end_layer() - 1 << " of "
            << choice.llm.path.string() << " on " << o.text("--host") << ":" << port << std::endl;

  int signal = 0;
  sigwait(&stop_signals, &signal);
  system->middleman().unpublish(stage, std::uint16_t(port));
  caf::anon_send_exit(stage, caf::exit_reason::user_shutdown);
  stage = nullptr;
  system.reset();
  std::cerr << "banyan stage: stopped\n";
  return 0;
}

}  // namespace banyan::cli
