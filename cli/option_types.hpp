#pragma once
// Option values that name Banyan types, parsed with an error that names the option.
#include <string>
#include <utility>

#include "cli/options.hpp"
#include "model/weight_format.hpp"
#include "scheduler/request.hpp"

namespace banyan::cli {

// A weight format option: f32, f16, bf16, int8 (q8) or int4 (q4).
WeightFormat format_option(const Options& o, const std::string& name);
WeightFormat parse_format_value(const std::string& option, const std::string& value);
// A KV cache element type (--kv-dtype, compute.kv_dtype): f32, f16 or bf16.
DType parse_kv_dtype_value(const std::string& option, const std::string& value);
// --device: "cpu" or "cuda".
std::string device_option(const Options& o);
// "HOST:PORT" of `option`; throws UsageError naming it otherwise.
std::pair<std::string, int> host_and_port(const std::string& value, const std::string& option);

// --prompt, --max-new-tokens, --temperature, --top-p, --top-k, --seed, --mode: what one
// generation asks for (generate, client).
void add_generation_options(Options& o);
// Their values, checked; `mode` the one --mode asks for, or `default_mode`.
GenerationConfig generation_option_values(const Options& o, const std::string& default_mode, std::string& mode);

}  // namespace banyan::cli
