#include "client/server_process.hpp"

#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <regex>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace banyan::client {

namespace {

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

ServerProcess::ServerProcess(const std::filesystem::path& banyan, const std::vector<std::string>& args,
                             std::chrono::seconds timeout) {
  char err_template[] = "/tmp/banyan-serve-XXXXXX";
  const int err_fd = ::mkstemp(err_template);
  if (err_fd < 0) throw std::runtime_error("cannot create a file for the server's stderr");
  err_file_ = err_template;
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> argv_s = {banyan.string(), "serve", "--port", "0"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err_fd);
  // Read stdout until the "listening on http://HOST:PORT" line.
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::regex listening("listening on http://[^:]+:([0-9]+)");
  std::smatch match;
  while (!std::regex_search(text, match, listening)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{out[0], POLLIN, 0};
    char chunk[512];
    ssize_t n = 0;
    if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0 || (n = ::read(out[0], chunk, sizeof chunk)) <= 0) {
      ::close(out[0]);
      stop(SIGKILL, std::chrono::seconds(10));
      throw std::runtime_error("banyan serve did not start listening; its stderr:\n" + error_output());
    }
    text.append(chunk, std::size_t(n));
  }
  port_ = std::stoi(match[1]);
  out_fd_ = out[0];
  ::fcntl(out_fd_, F_SETFD, FD_CLOEXEC);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop(SIGKILL, std::chrono::seconds(10));
  if (out_fd_ >= 0) ::close(out_fd_);
  std::error_code ignored;
  std::filesystem::remove(err_file_, ignored);
}

int ServerProcess::stop(int signal, std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return exit_code(status);
}

std::string ServerProcess::error_output() const {
  std::ifstream in(err_file_);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

long long ServerProcess::rss_bytes() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/statm");
  long long pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

}  // namespace banyan::client
