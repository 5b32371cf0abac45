#pragma once
// A `banyan serve` child process on a free loopback port, for tests and benchmarks: started,
// waited for until it listens, stopped with a signal, killed if it is still there at the end.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace banyan::client {

class ServerProcess {
 public:
  // Runs `banyan serve --port 0 ARGS...` and waits (up to `timeout`) for its "listening on"
  // line; throws std::runtime_error with its stderr when it exits or stays silent instead.
  ServerProcess(const std::filesystem::path& banyan, const std::vector<std::string>& args,
                std::chrono::seconds timeout = std::chrono::seconds(120));
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  int pid() const { return pid_; }
  // Sends `signal` and waits for the exit; returns the exit code (128 + n when killed by signal n,
  // -1 when it did not exit within `timeout`).
  int stop(int signal, std::chrono::seconds timeout);
  // Everything it wrote to stderr so far.
  std::string error_output() const;
  // Resident memory now, in bytes (from /proc).
  long long rss_bytes() const;

 private:
  int pid_ = -1;
  int port_ = 0;
  int out_fd_ = -1;  // its stdout, kept open so that its writes never fail
  std::filesystem::path err_file_;
};

}  // namespace banyan::client
