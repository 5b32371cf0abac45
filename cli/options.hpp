#pragma once
// A small command-line parser: declared options with help text, `--name value` or
// `--name=value`, positional arguments, and an error that names the option.
#include <map>
#include <stdexcept>
#include <optional>
#include <string>
#include <vector>

namespace banyan::cli {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Options {
 public:
  Options(std::string command, std::string usage, std::string description);

  // An option taking a value, e.g. add("--max-new-tokens", "N", "tokens to generate", "128").
  Options& add(const std::string& name, const std::string& metavar, const std::string& help,
               std::optional<std::string> default_value = std::nullopt);
  // An option that may be given several times; values() returns them in order.
  Options& repeatable(const std::string& name, const std::string& metavar, const std::string& help);
  // An option without a value.
  Options& flag(const std::string& name, const std::string& help);

  // Parses argv; throws UsageError naming the offending argument. Returns false when --help
  // was given (the help text has been printed).
  bool parse(int argc, char** argv);

  bool has(const std::string& name) const;
  std::string text(const std::string& name) const;
  int integer(const std::string& name) const;
  double number(const std::string& name) const;
  std::vector<std::string> values(const std::string& name) const;
  // A comma-separated value as its items ("1,2" -> {"1", "2"}).
  std::vector<std::string> list(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

  std::string help() const;

 private:
  struct Spec {
    std::string metavar, help;
    std::optional<std::string> default_value;
    bool is_flag = false;
    bool is_repeatable = false;
  };
  const Spec& spec(const std::string& name) const;

  std::string command_, usage_, description_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace banyan::cli
