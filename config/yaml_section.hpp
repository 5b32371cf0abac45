#pragma once
// Reading YAML with errors that point into the file: "FILE:LINE:COLUMN: key 'a.b': what". Shared
// by the serve and cluster configs.
#include <set>
#include <sstream>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "config/serve_config.hpp"

namespace banyan::config {

// "FILE:LINE:COLUMN: key 'a.b': what", the position taken from the node `at`.
[[noreturn]] inline void fail_at(const YAML::Node& at, const std::string& key, const std::string& source,
                                 const std::string& what) {
  std::ostringstream s;
  s << source;
  if (at && !at.Mark().is_null()) s << ":" << at.Mark().line + 1 << ":" << at.Mark().column + 1;
  s << ": " << (key.empty() ? "" : "key '" + key + "': ") << what;
  throw ConfigError(s.str());
}

// Reads one mapping, checking that every key it holds is known, with errors pointing into the file.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, const std::string& source)
      : node_(node), path_(std::move(path)), source_(source) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) fail(node_, "expected a mapping of keys");
  }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& what) const { fail_at(at, path_, source_, what); }

  Section child(const std::string& key) const { return Section(get(key), join(key), source_); }

  template <class T>
  void read(const std::string& key, T& out, const char* expected) {
    const YAML::Node v = get(key);
    if (!v || v.IsNull()) return;
    if (!v.IsScalar()) fail_at(v, join(key), source_, std::string("expected ") + expected);
    try {
      out = v.as<T>();
    } catch (const YAML::Exception&) {
      fail_at(v, join(key), source_, std::string("expected ") + expected + ", got '" + v.Scalar() + "'");
    }
  }

  void read_list(const std::string& key, std::vector<std::string>& out) {
    const YAML::Node v = get(key);
    if (!v || v.IsNull()) return;
    if (!v.IsSequence()) fail_at(v, join(key), source_, "expected a list of strings");
    for (const auto& item : v) {
      if (!item.IsScalar()) fail_at(item, join(key), source_, "expected a string");
      out.push_back(item.Scalar());
    }
  }

  YAML::Node get(const std::string& key) const {
    known_.insert(key);
    return node_ && node_.IsMap() ? node_[key] : YAML::Node();
  }
  const YAML::Node& node() const { return node_; }
  const std::string& source() const { return source_; }
  std::string join(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // Unknown keys are mistakes (a typo silently ignored is a setting silently lost).
  void finish() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const std::string key = kv.first.Scalar();
      if (known_.count(key) == 0) {
        std::string list;
        for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
        fail_at(kv.first, join(key), source_, "unknown key (expected one of: " + list + ")");
      }
    }
  }

 private:
  YAML::Node node_;
  std::string path_;
  const std::string& source_;
  mutable std::set<std::string> known_;
};

// The whole text parsed; throws ConfigError for bad YAML or an empty file.
YAML::Node load_yaml(const std::string& text, const std::string& source);
// A serve config's sections of `top`, which the caller finishes and validates. `cluster`: the
// model also takes its parallelism keys.
ServeConfig read_serve(Section& top, const std::string& source, bool cluster);

}  // namespace banyan::config
