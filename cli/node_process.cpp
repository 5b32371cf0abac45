#include "cli/node_process.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <ifaddrs.h>
#include <netdb.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "model/error.hpp"

namespace banyan::cli {

NodeProcess::NodeProcess(const std::vector<std::string>& argv, OnLine on_line) {
  int out[2];
  if (::pipe(out) != 0) throw Error(std::string("cannot start a node: pipe: ") + std::strerror(errno));
  std::vector<std::string> args = argv;
  std::vector<char*> c_args;
  for (auto& a : args) c_args.push_back(a.data());
  c_args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw Error(std::string("cannot start a node: fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a launcher that dies takes its nodes along
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    ::execvp(c_args[0], c_args.data());
    const std::string why = std::string("cannot run ") + c_args[0] + ": " + std::strerror(errno) + "\n";
    [[maybe_unused]] auto written = ::write(STDERR_FILENO, why.data(), why.size());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also here: signal() may come before the child got to it
  ::close(out[1]);
  relay_ = std::thread([fd = out[0], on_line = std::move(on_line)] {
    std::string pending;
    char chunk[4096];
    for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) {
      pending.append(chunk, std::size_t(n));
      for (std::size_t end; (end = pending.find('\n')) != std::string::npos; pending.erase(0, end + 1))
        on_line(pending.substr(0, end));
    }
    if (!pending.empty()) on_line(pending);
    ::close(fd);
  });
}

NodeProcess::~NodeProcess() {
  if (!exit_status()) {
    signal(SIGKILL);
    wait(std::chrono::seconds(10));
  }
  relay_.join();  // the pipe closes when the process group's last writer is gone
}

std::optional<int> NodeProcess::exit_status() {
  if (status_) return status_;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return status_;
}

void NodeProcess::signal(int signal) const {
  if (!status_) ::kill(-pid_, signal);
}

std::optional<int> NodeProcess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exit_status() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return exit_status();
}

bool is_this_machine(const std::string& host) {
  if (host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1") return true;
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) == 0 && host == name) return true;
  ifaddrs* interfaces = nullptr;
  if (::getifaddrs(&interfaces) != 0) return false;
  bool found = false;
  for (ifaddrs* i = interfaces; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) continue;
    char address[INET6_ADDRSTRLEN] = {};
    const socklen_t size = i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (::getnameinfo(i->ifa_addr, size, address, sizeof address, nullptr, 0, NI_NUMERICHOST) == 0) found = host == address;
  }
  ::freeifaddrs(interfaces);
  return found;
}

}  // namespace banyan::cli
