#pragma once
// Loopback ports nobody listens on now, for the processes a test or benchmark starts.
#include <vector>

namespace banyan::testkit {

// `count` distinct ports, each bound to 0 and released (another process may still take one
// before it is used: a race tests accept on a machine of their own).
std::vector<int> free_ports(int count);

}  // namespace banyan::testkit
