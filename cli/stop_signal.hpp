#pragma once
// Waiting for SIGTERM or SIGINT in a command that serves until told to stop. A handler, not a
// blocked mask with sigwait: libraries start threads before main (OpenBLAS does), and a stop
// signal the kernel hands to one of those would kill the process without its shutdown.
#include <chrono>
#include <optional>

namespace banyan::cli {

class StopSignal {
 public:
  StopSignal();  // installs the handlers; one at a time per process
  ~StopSignal();  // restores the default actions
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // The signal that came within `timeout`, if one did.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  int wait();
};

}  // namespace banyan::cli
