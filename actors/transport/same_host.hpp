#pragma once
// Whether a peer's data plane can share memory with ours: UCX then moves bytes through shared
// memory and cross-memory attach instead of loopback tcp (bench transport).
#include <string>

namespace banyan::transport {

// Says which kernel and which IPC, PID and network namespaces this process lives in: two
// processes with the same identity can map each other's memory (IPC), read it (PID: UCX's cma)
// and wake each other (UCX signals shared-memory arrivals over abstract Unix sockets, which
// belong to a network namespace). Empty when the machine does not say.
std::string memory_identity();

// Whether `host` (an IPv4 address) is this machine: loopback, or one of its interfaces' addresses.
bool is_local_address(const std::string& host);

}  // namespace banyan::transport
