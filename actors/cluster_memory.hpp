#pragma once
// What each other node of a cluster last reported of its memory (MemoryReport), as the head's
// watch links hear it with their heartbeats. The links write it from their actors; /metrics
// reads it from any thread.
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "model/memory_report.hpp"

namespace banyan::actors {

class ClusterMemory {
 public:
  void set(const std::string& node, const MemoryReport& report) {
    std::lock_guard lock(mutex_);
    reports_[node] = report;
  }
  void forget(const std::string& node) {
    std::lock_guard lock(mutex_);
    reports_.erase(node);
  }
  // In the order of the nodes' names.
  std::vector<std::pair<std::string, MemoryReport>> reports() const {
    std::lock_guard lock(mutex_);
    return {reports_.begin(), reports_.end()};
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, MemoryReport> reports_;
};

}  // namespace banyan::actors
