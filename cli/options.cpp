#include "cli/options.hpp"

#include <iostream>
#include <sstream>

namespace banyan::cli {

Options::Options(std::string command, std::string usage, std::string description)
    : command_(std::move(command)), usage_(std::move(usage)), description_(std::move(description)) {
  flag("--help", "show this help and exit");
}

Options& Options::add(const std::string& name, const std::string& metavar, const std::string& help,
                      std::optional<std::string> default_value) {
  order_.push_back(name);
  specs_[name] = Spec{metavar, help, std::move(default_value), false};
  return *this;
}

Options& Options::repeatable(const std::string& name, const std::string& metavar, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{metavar, help, std::nullopt, false, true};
  return *this;
}

Options& Options::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{"", help, std::nullopt, true};
  return *this;
}

const Options::Spec& Options::spec(const std::string& name) const {
  auto it = specs_.find(name);
  if (it == specs_.end()) throw std::logic_error("option " + name + " was never declared");
  return it->second;
}

bool Options::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 2 || arg.compare(0, 2, "--") != 0 || arg == "--") {
      if (arg == "--") {
        for (++i; i < argc; ++i) positional_.emplace_back(argv[i]);
        break;
      }
      positional_.push_back(arg);
      continue;
    }
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    auto it = specs_.find(arg);
    if (it == specs_.end()) throw UsageError("unknown option '" + arg + "'");
    std::string value = "1";
    if (it->second.is_flag) {
      if (inline_value) throw UsageError("option '" + arg + "' takes no value");
    } else if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= argc) throw UsageError("option '" + arg + "' needs a value (" + it->second.metavar + ")");
      value = argv[++i];
    }
    auto& slot = values_[arg];
    if (!it->second.is_repeatable) slot.clear();
    slot.push_back(std::move(value));
  }
  if (has("--help")) {
    std::cout << help();
    return false;
  }
  return true;
}

bool Options::has(const std::string& name) const {
  spec(name);
  return values_.count(name) != 0;
}

std::string Options::text(const std::string& name) const {
  const Spec& s = spec(name);
  if (auto it = values_.find(name); it != values_.end()) return it->second.back();
  if (s.default_value) return *s.default_value;
  throw UsageError("option '" + name + "' is required");
}

int Options::integer(const std::string& name) const {
  const std::string v = text(name);
  try {
    std::size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size() && x >= INT32_MIN && x <= INT32_MAX) return int(x);
  } catch (const std::exception&) {
  }
  throw UsageError("option '" + name + "' needs an integer, got '" + v + "'");
}

double Options::number(const std::string& name) const {
  const std::string v = text(name);
  try {
    std::size_t used = 0;
    const double x = std::stod(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw UsageError("option '" + name + "' needs a number, got '" + v + "'");
}

std::vector<std::string> Options::values(const std::string& name) const {
  spec(name);
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> Options::list(const std::string& name) const {
  std::vector<std::string> items;
  std::stringstream in(text(name));
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

std::string Options::help() const {
  std::ostringstream out;
  out << "usage: banyan " << command_ << " " << usage_ << "\n\n" << description_ << "\n\noptions:\n";
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  " + name + (s.is_flag ? "" : " " + s.metavar);
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    out << left << s.help;
    if (s.default_value && !s.default_value->empty()) out << " (default: " << *s.default_value << ")";
    out << "\n";
  }
  return out.str();
}

}  // namespace banyan::cli
