#include "testkit/child_process.hpp"

#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace banyan::testkit {

ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  char err_template[] = "/tmp/banyan-child-XXXXXX";
  const int err_fd = ::mkstemp(err_template);
  if (err_fd < 0) throw std::runtime_error("cannot create a file for a child's stderr");
  err_file_ = err_template;
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> args = argv;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);  // its own process group: stop() reaches its children too
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    std::vector<char*> c_args;
    for (auto& a : args) c_args.push_back(a.data());
    c_args.push_back(nullptr);
    ::execvp(c_args[0], c_args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err_fd);
  out_fd_ = out[0];
  ::fcntl(out_fd_, F_SETFD, FD_CLOEXEC);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) stop(SIGKILL, std::chrono::seconds(10));
  ::close(out_fd_);
  std::error_code ignored;
  std::filesystem::remove(err_file_, ignored);
}

std::smatch ChildProcess::wait_for_output(const std::regex& pattern, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::smatch match;
  while (!std::regex_search(out_, match, pattern)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{out_fd_, POLLIN, 0};
    char chunk[512];
    ssize_t n = 0;
    if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0 || (n = ::read(out_fd_, chunk, sizeof chunk)) <= 0)
      throw std::runtime_error("the child process did not get ready; its stderr:\n" + error_output());
    out_.append(chunk, std::size_t(n));
  }
  return match;
}

int ChildProcess::stop(int signal, std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  if (signal) ::kill(signal == SIGKILL ? -pid_ : pid_, signal);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ChildProcess::error_output() const {
  std::ifstream in(err_file_);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

long long ChildProcess::rss_bytes() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/statm");
  long long pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

}  // namespace banyan::testkit
