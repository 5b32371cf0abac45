#include "cli/option_types.hpp"

namespace banyan::cli {

std::string device_option(const Options& o) {
  const std::string device = o.text("--device");
  if (device != "cpu" && device != "cuda") throw UsageError("--device must be 'cpu' or 'cuda', got '" + device + "'");
  return device;
}

WeightFormat parse_format_value(const std::string& option, const std::string& value) {
  const auto f = parse_format(value);
  if (!f) throw UsageError(option + " must be f32, f16, bf16, int8 or int4, got '" + value + "'");
  return *f;
}

WeightFormat format_option(const Options& o, const std::string& name) { return parse_format_value(name, o.text(name)); }

DType parse_kv_dtype_value(const std::string& option, const std::string& value) {
  if (value == "f32") return DType::f32;
  if (value == "f16") return DType::f16;
  if (value == "bf16") return DType::bf16;
  throw UsageError(option + " must be f32, f16 or bf16, got '" + value + "'");
}

void add_generation_options(Options& o) {
  o.add("--mode", "speculative|incremental", "decoding mode (default: speculative when the model has SSMs)");
  o.add("--prompt", "TEXT", "the prompt", "Once upon a time");
  o.add("--max-new-tokens", "N", "tokens to generate per prompt", "128");
  o.add("--temperature", "T", "sampling temperature; 0 is greedy", "0");
  o.add("--top-p", "P", "nucleus sampling mass", "1");
  o.add("--top-k", "K", "sample among the K most likely tokens (0: all)", "0");
  o.add("--seed", "N", "random seed: the same seed gives the same text", "0");
}

GenerationConfig generation_option_values(const Options& o, const std::string& default_mode, std::string& mode) {
  GenerationConfig g;
  g.max_new_tokens = o.integer("--max-new-tokens");
  auto& p = g.sampling;
  p.temperature = float(o.number("--temperature"));
  p.top_p = float(o.number("--top-p"));
  p.top_k = o.integer("--top-k");
  p.seed = std::uint64_t(o.integer("--seed"));
  if (g.max_new_tokens < 0) throw UsageError("--max-new-tokens must not be negative");
  if (p.temperature < 0) throw UsageError("--temperature must be 0 (greedy) or more");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw UsageError("--top-p must be in (0, 1]");
  if (p.top_k < 0) throw UsageError("--top-k must be 0 (no limit) or more");
  mode = o.has("--mode") ? o.text("--mode") : default_mode;
  if (mode != "speculative" && mode != "incremental") throw UsageError("--mode must be 'speculative' or 'incremental'");
  g.speculate = mode == "speculative";
  return g;
}

std::pair<std::string, int> host_and_port(const std::string& value, const std::string& option) {
  const auto colon = value.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon > 0) {
    try {
      std::size_t used = 0;
      port = std::stoi(value.substr(colon + 1), &used);
      if (used != value.size() - colon - 1) port = -1;
    } catch (const std::exception&) {
    }
  }
  if (port < 1 || port > 65535) throw UsageError(option + " must be HOST:PORT, got '" + value + "'");
  return {value.substr(0, colon), port};
}

}  // namespace banyan::cli
