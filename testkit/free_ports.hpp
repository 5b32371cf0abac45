#pragma once
// Loopback ports nobody listens on now, for the processes a test or benchmark starts.
#include <vector>

namespace banyan::testkit {

// `count` distinct ports that bind on loopback now, drawn at random from below the kernel's
// ephemeral range: a port from inside it could be handed to some process's outgoing connection
// (a node's own links to the head, another test's) before the test's process binds it. Another
// process may still take one first: a race tests accept on a machine of their own.
std::vector<int> free_ports(int count);

}  // namespace banyan::testkit
