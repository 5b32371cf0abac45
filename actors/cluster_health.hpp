#pragma once
// What is wrong with this process's part of a cluster, as its links to other nodes see it: one
// entry per link, empty while that link is fine. The links write it from their actors; the node
// actor's heartbeat answers, the gateway's /health and the wait for nodes to join read it, from
// any thread.
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace banyan::actors {

class ClusterHealth {
 public:
  // `problem` empty: `link` is fine.
  void set(const std::string& link, std::string problem) {
    std::lock_guard lock(mutex_);
    if (problem.empty())
      problems_.erase(link);
    else
      problems_[link] = std::move(problem);
  }
  // One line per link with a problem, in the order of the links' names.
  std::vector<std::string> problems() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [link, problem] : problems_) out.push_back(problem);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> problems_;
};

}  // namespace banyan::actors
