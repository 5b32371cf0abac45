#include "cli/stop_signal.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "model/error.hpp"

namespace banyan::cli {

namespace {

int pipe_fds[2] = {-1, -1};  // the handler writes the signal's number, wait() reads it

void on_stop_signal(int signal) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] auto written = ::write(pipe_fds[1], &byte, 1);
  errno = saved;
}

}  // namespace

StopSignal::StopSignal() {
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
    throw Error(std::string("cannot wait for stop signals: pipe: ") + std::strerror(errno));
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
}

StopSignal::~StopSignal() {
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

std::optional<int> StopSignal::wait(std::chrono::milliseconds timeout) {
  pollfd p{pipe_fds[0], POLLIN, 0};
  if (::poll(&p, 1, int(timeout.count())) <= 0) return std::nullopt;
  unsigned char byte = 0;
  if (::read(pipe_fds[0], &byte, 1) != 1) return std::nullopt;
  return int(byte);
}

int StopSignal::wait() {
  for (;;)
    if (const auto signal = wait(std::chrono::hours(1))) return *signal;
}

}  // namespace banyan::cli
