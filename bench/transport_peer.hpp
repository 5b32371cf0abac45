#pragma once
// The two ends of `bench transport`: the driver (this process) and the peer it starts (another
// `banyan bench transport --peer` process), talking over a plain TCP connection: the driver
// writes one command line per phase ("PHASE BYTES COUNT"), the peer carries the phase out on its
// side and answers "ok". Each phase moves COUNT messages of BYTES one way (…_bw) or there and
// back (…_rtt) over: raw UCX (the data plane's send and receive), the activation path (the
// stages' Bulk, floats in and out, as the pipeline sends activations), or the TCP socket itself.
#include <string>
#include <vector>

namespace banyan::bench {

// Tags of the phases' messages on the data planes.
namespace transport_tags {
inline constexpr std::uint64_t raw_one_way = 10, raw_there = 11, raw_back = 12;
inline constexpr std::uint64_t bulk_one_way = 20, bulk_there = 21, bulk_back = 22;
}  // namespace transport_tags

// Runs the peer: connects back to the driver's data plane and Bulk ports, listens on TCP, prints
// "transport peer ready: tcp=N ucx=N bulk=N" and serves the driver's commands until "quit".
int run_transport_peer(int driver_ucx_port, int driver_bulk_port);

}  // namespace banyan::bench
