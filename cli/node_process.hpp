#pragma once
// One node of a cluster as `banyan launch` runs it: a child process (this binary, or the
// cluster's remote command for a node on another host) in its own process group, its stdout and
// stderr relayed line by line to a callback from a thread of its own.
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace banyan::cli {

class NodeProcess {
 public:
  using OnLine = std::function<void(const std::string& line)>;
  // Starts argv[0] (searched on PATH) with the rest as its arguments; throws Error when it cannot.
  NodeProcess(const std::vector<std::string>& argv, OnLine on_line);
  ~NodeProcess();  // kills it if it still runs
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  int pid() const { return pid_; }
  // Its exit status once it has exited (128 + n when killed by signal n); never blocks.
  std::optional<int> exit_status();
  // Sends `signal` to its process group (it and what it started, an ssh client say).
  void signal(int signal) const;
  // Waits up to `timeout` for it to exit; its status, or nothing.
  std::optional<int> wait(std::chrono::milliseconds timeout);

 private:
  int pid_ = -1;
  std::optional<int> status_;
  std::thread relay_;
};

// Whether `host` names this machine: localhost, one of its interfaces' addresses, or its name.
bool is_this_machine(const std::string& host);

}  // namespace banyan::cli
