#pragma once
// `banyan serve`'s settings: a serve config (YAML, or a cluster config's serve part) with the
// flags on top, and the models it picks.
#include "cli/model_setup.hpp"
#include "cli/options.hpp"
#include "config/serve_config.hpp"

namespace banyan::cli {

// Declares --config, the model options and every flag that overrides a config key.
void add_serve_options(Options& o);
// `base` (or --config's file, or the defaults) with every flag given on top; validated.
config::ServeConfig serve_config(const Options& o, const config::ServeConfig* base = nullptr);
// The models a config serves, and where.
ModelChoice model_choice(const config::ServeConfig& c);

}  // namespace banyan::cli
