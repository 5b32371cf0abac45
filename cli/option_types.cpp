#include "cli/option_types.hpp"

namespace banyan::cli {

WeightFormat parse_format_value(const std::string& option, const std::string& value) {
  const auto f = parse_format(value);
  if (!f) throw UsageError(option + " must be f32, f16, int8 or int4, got '" + value + "'");
  return *f;
}

WeightFormat format_option(const Options& o, const std::string& name) { return parse_format_value(name, o.text(name)); }

}  // namespace banyan::cli
