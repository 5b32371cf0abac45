#pragma once
// A `banyan serve` child process on a free loopback port, for tests and benchmarks.
#include "testkit/child_process.hpp"

namespace banyan::testkit {

class ServerProcess : public ChildProcess {
 public:
  // Runs `banyan serve --port 0 ARGS...` and waits (up to `timeout`) for its "listening on"
  // line; throws std::runtime_error with its stderr when it exits or stays silent instead.
  ServerProcess(const std::filesystem::path& banyan, const std::vector<std::string>& args,
                std::chrono::seconds timeout = std::chrono::seconds(120));
  int port() const { return port_; }

 private:
  int port_ = 0;
};

}  // namespace banyan::testkit
