#pragma once
// A child process for tests and benchmarks: started with its stdout on a pipe and its stderr in
// a file, read until a line says it is ready, stopped with a signal, killed if still there at
// the end.
#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

namespace banyan::testkit {

class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Reads its stdout until `pattern` matches; returns the match. Throws std::runtime_error with
  // its stderr when it exits or stays silent for `timeout` instead.
  std::smatch wait_for_output(const std::regex& pattern, std::chrono::seconds timeout);
  int pid() const { return pid_; }
  // What it has written to stdout so far (as far as wait_for_output read).
  const std::string& output() const { return out_; }
  // Sends `signal` (0: none) and waits for the exit; returns the exit code (128 + n when killed
  // by signal n, -1 when it did not exit within `timeout`).
  int stop(int signal, std::chrono::seconds timeout);
  // Everything it wrote to stderr so far.
  std::string error_output() const;
  // Resident memory now, in bytes (from /proc).
  long long rss_bytes() const;

 private:
  int pid_ = -1;
  int out_fd_ = -1;  // its stdout, kept open so that its writes never fail
  std::string out_;  // what has been read of it
  std::filesystem::path err_file_;
};

}  // namespace banyan::testkit
