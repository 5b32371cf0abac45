// bench transport: the data plane's (actors/transport, UCX) one-way throughput and round-trip
// time between two workers over loopback, per message size, with several messages in flight.
// The baseline in the same run: a plain memcpy of the same bytes (what a local stage hand-off
// costs). For scale, CAF 0.17's own remote messaging moves 1 MiB at about 75 MiB/s here
// (../shared/DEPENDENCIES.md), which is why tensors do not travel in CAF messages.
#include <cstdio>
#include <cstring>

#include "actors/transport/data_plane.hpp"
#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "cli/options.hpp"

namespace banyan::bench {

int transport_benchmark(int argc, char** argv) {
  cli::Options o("bench transport", "[options]",
                 "One-way throughput and round-trip time of the UCX data plane between two workers over loopback,\n"
                 "per message size, against memcpy of the same bytes. Set UCX_TLS to pick transports (tcp, sm, ...).");
  o.add("--sizes", "LIST", "message sizes in KiB", "64,1024,4096,16384");
  o.add("--messages", "N", "messages per size (one way)", "200");
  o.add("--in-flight", "N", "messages in flight at once", "8");
  o.add("--out", "FILE", "JSON result file", "bench-transport.json");
  if (!o.parse(argc, argv)) return 0;
  const int messages = o.integer("--messages"), in_flight = o.integer("--in-flight");
  if (messages < 1 || in_flight < 1) throw cli::UsageError("--messages and --in-flight must be positive");

  transport::DataPlane a, b;
  const int to_b = a.connect("127.0.0.1", b.port()), to_a = b.connect("127.0.0.1", a.port());
  nlohmann::json rows = nlohmann::json::array();
  std::printf("%9s | %12s %10s | %12s | %9s\n", "size", "one-way MB/s", "vs memcpy", "memcpy MB/s", "RTT us");
  for (const auto& kib : o.list("--sizes")) {
    const std::size_t bytes = std::size_t(std::stoul(kib)) << 10;
    const std::vector<std::byte> payload(bytes, std::byte{1});
    // Warm-up: connects the lanes and pages in the buffers.
    auto w = b.receive(1);
    a.send(to_b, 1, payload).get();
    w.get();

    Stopwatch one_way;
    std::vector<std::future<std::vector<std::byte>>> got;
    std::vector<std::future<void>> sent;
    for (int i = 0; i < messages; ++i) {
      got.push_back(b.receive(2));
      sent.push_back(a.send(to_b, 2, payload));
      if (i + 1 >= in_flight) got[std::size_t(i + 1 - in_flight)].get();
    }
    for (int i = std::max(0, messages - in_flight + 1); i < messages; ++i) got[std::size_t(i)].get();
    for (auto& s : sent) s.get();
    const double mb_s = double(bytes) * messages / one_way.seconds() / 1e6;

    const int trips = std::max(10, messages / 10);
    Stopwatch rtt;
    for (int i = 0; i < trips; ++i) {
      auto back = a.receive(3);
      auto there = b.receive(4);
      a.send(to_b, 4, payload);
      b.send(to_a, 3, there.get());
      back.get();
    }
    const double rtt_us = rtt.seconds() / trips * 1e6;

    std::vector<std::byte> copy(bytes);
    Stopwatch copy_clock;
    for (int i = 0; i < messages; ++i) std::memcpy(copy.data(), payload.data(), bytes);
    const double memcpy_mb_s = double(bytes) * messages / copy_clock.seconds() / 1e6;
    std::printf("%6s KiB | %12.0f %9.2fx | %12.0f | %9.0f\n", kib.c_str(), mb_s, mb_s / memcpy_mb_s, memcpy_mb_s, rtt_us);
    std::fflush(stdout);
    rows.push_back({{"bytes", bytes},
                    {"one_way_mb_per_s", mb_s},
                    {"memcpy_mb_per_s", memcpy_mb_s},
                    {"ratio_to_memcpy", mb_s / memcpy_mb_s},
                    {"round_trip_us", rtt_us},
                    {"in_flight", in_flight}});
  }
  const char* tls = std::getenv("UCX_TLS");
  write_json(o.text("--out"), {{"machine", machine_description()}, {"ucx_tls", tls ? tls : "(default)"}, {"rows", rows}});
  return 0;
}

}  // namespace banyan::bench
