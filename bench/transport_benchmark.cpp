// bench transport: the data plane (actors/transport, UCX) between two processes, per message
// size from 4 KiB to 64 MiB: one-way throughput and round-trip time of raw UCX, of the activation
// path the pipeline stages use (actors/Bulk: floats in, floats out), and, as the baseline in the
// same run, of a plain TCP socket between the same two processes. The activation path must stay
// within 1.5x of raw UCX (time per message, both ways of measuring); the run says whether it does.
// The other process is `banyan bench transport --peer` (bench/transport_peer.hpp).
// For scale, CAF 0.17's own remote messaging moves 1 MiB at about 75 MiB/s here
// (../shared/DEPENDENCIES.md), which is why tensors do not travel in CAF messages.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <sys/socket.h>

#include "actors/bulk.hpp"
#include "actors/transport/data_plane.hpp"
#include "bench/bench_util.hpp"
#include "bench/benchmarks.hpp"
#include "bench/transport_peer.hpp"
#include "cli/options.hpp"
#include "model/error.hpp"
#include "testkit/child_process.hpp"

namespace banyan::bench {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
namespace tags = transport_tags;

struct Figures {
  double mb_per_s = 0, round_trip_us = 0;
};

// Each figure's median over the runs.
Figures median(std::vector<Figures> runs) {
  const auto mid = [&](auto field) {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(r.*field);
    std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  return {mid(&Figures::mb_per_s), mid(&Figures::round_trip_us)};
}

class Driver {
 public:
  Driver() : bulk_("127.0.0.1", "127.0.0.1", 0), control_(io_) {}

  void start_peer() {
    peer_ = std::make_unique<testkit::ChildProcess>(std::vector<std::string>{
        BANYAN_BINARY, "bench", "transport", "--peer", std::to_string(plane_.port()) + "," + std::to_string(bulk_.port())});
    const auto ready = peer_->wait_for_output(std::regex("ready: tcp=(\\d+) ucx=(\\d+) bulk=(\\d+)"), std::chrono::seconds(60));
    control_.connect({asio::ip::make_address("127.0.0.1"), std::uint16_t(std::stoi(ready[1]))});
    control_.set_option(tcp::no_delay(true));
    // A peer that stops answering ends the run with an error, not a hang.
    const timeval limit{120, 0};
    ::setsockopt(control_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    to_peer_ = plane_.connect("127.0.0.1", std::stoi(ready[2]));
    bulk_to_peer_ = bulk_.connect("127.0.0.1", std::stoi(ready[3]));
  }

  std::vector<std::string> transports() { return plane_.transports(to_peer_); }

  void stop_peer() {
    command("quit", 0, 0);
    peer_->stop(0, std::chrono::seconds(30));
  }

  // As UCX's own perftest runs, nothing copied, but from as many buffers as the window holds,
  // as the activation path sends: one buffer sent over and over stays in the cache, which a
  // shared-memory transport then copies at cache speed (12 GB/s here) that no stage sees.
  Figures raw_ucx(std::size_t bytes, int count, int trips) {
    std::vector<std::shared_ptr<const std::vector<std::byte>>> payloads;
    for (std::size_t i = 0; i < kWindow; ++i) payloads.push_back(std::make_shared<const std::vector<std::byte>>(bytes, std::byte{1}));
    const auto& payload = payloads.front();
    auto back = std::make_shared<std::vector<std::byte>>(bytes);  // the place's own: see DataPlane::Place
    Figures f;
    std::size_t next = 0;
    f.mb_per_s = one_way(bytes, count, "ucx_bw", [&] {
      const auto& p = payloads[next++ % kWindow];
      return plane_.send(to_peer_, tags::raw_one_way, *p, p);
    });
    f.round_trip_us = round_trips(bytes, trips, "ucx_rtt", [&] {
      auto arriving = plane_.receive_into(tags::raw_back, [back](std::size_t) { return back->data(); });
      plane_.send(to_peer_, tags::raw_there, *payload, payload);
      if (arriving.wait_for(std::chrono::seconds(60)) != std::future_status::ready)
        throw Error("the transport peer sent nothing back within 60 s");
    });
    return f;
  }

  // As a stage sends its activations in steady state: in memory that held earlier ones (a stage
  // swaps its input and output vectors; Bulk keeps what it sent), moved into the send; received
  // into such memory too, and given back once used. Writing the activations is the stage's
  // compute, not the path's: neither path here writes its payload.
  Figures activation_path(std::size_t bytes, int count, int trips) {
    const auto send = [&](std::uint64_t tag) { return bulk_.send(bulk_to_peer_, tag, bulk_.buffer(bytes / sizeof(float))); };
    // A window's worth of buffers, made before the clock runs as a stage's are by its first
    // steps (a fresh 64 MiB costs ~250 ms of page faults here, more than sending it).
    bulk_.reserve(bytes / sizeof(float), kWindow);
    Figures f;
    f.mb_per_s = one_way(bytes, count, "bulk_bw", [&] { return send(tags::bulk_one_way); });
    f.round_trip_us = round_trips(bytes, trips, "bulk_rtt", [&] {
      send(tags::bulk_there);
      bulk_.recycle(bulk_.receive(tags::bulk_back, std::chrono::seconds(60)));
    });
    return f;
  }

  Figures tcp(std::size_t bytes, int count, int trips) {
    std::vector<std::byte> payload(bytes, std::byte{1});
    Figures f;
    f.mb_per_s = one_way(bytes, count, "tcp_bw", [&] {
      asio::write(control_, asio::buffer(payload));  // done when written: the kernel's buffers are its window
      std::promise<void> written;
      written.set_value();
      return written.get_future();
    });
    f.round_trip_us = round_trips(bytes, trips, "tcp_rtt", [&] {
      asio::write(control_, asio::buffer(payload));
      read_exact(payload);
    });
    return f;
  }

 private:
  // Tells the peer the phase; it answers "ok" once it has received (or returned) every message.
  void command(const std::string& phase, std::size_t bytes, int count) {
    asio::write(control_, asio::buffer(phase + " " + std::to_string(bytes) + " " + std::to_string(count) + "\n"));
  }
  void await_ok() {
    asio::read_until(control_, lines_, '\n');
    std::istream in(&lines_);
    std::string line;
    std::getline(in, line);
    if (line != "ok") throw Error("the transport peer answered '" + line + "'");
  }
  void read_exact(std::vector<std::byte>& into) {
    const std::size_t buffered = std::min(lines_.size(), into.size());
    asio::buffer_copy(asio::buffer(into), lines_.data(), buffered);
    lines_.consume(buffered);
    asio::read(control_, asio::buffer(into.data() + buffered, into.size() - buffered));
  }
  // `count` sends, at most kWindow of them under way at once (as ucx_perftest's tag_bw keeps a
  // window of sends outstanding: a stage too has only its last outputs under way), timed after
  // an untimed first window (a path's first sends of a size set up its buffers and lanes).
  static constexpr std::size_t kWindow = 8;
  template <class Send>
  double one_way(std::size_t bytes, int count, const std::string& phase, Send send) {
    command(phase, bytes, count + int(kWindow));
    std::deque<std::future<void>> under_way;
    for (std::size_t i = 0; i < kWindow; ++i) under_way.push_back(send());
    for (auto& s : under_way) s.get();
    under_way.clear();
    Stopwatch clock;
    for (int i = 0; i < count; ++i) {
      if (under_way.size() == kWindow) {
        under_way.front().get();
        under_way.pop_front();
      }
      under_way.push_back(send());
    }
    for (auto& s : under_way) s.get();
    await_ok();
    return double(bytes) * count / clock.seconds() / 1e6;
  }
  template <class Trip>
  double round_trips(std::size_t bytes, int trips, const std::string& phase, Trip trip) {
    command(phase, bytes, trips);
    trip();  // untimed: the first of a size sets up its lanes
    Stopwatch clock;
    for (int i = 1; i < trips; ++i) trip();
    const double us = clock.seconds() / (trips - 1) * 1e6;
    await_ok();
    return us;
  }

  transport::DataPlane plane_;
  actors::Bulk bulk_;
  asio::io_context io_;
  tcp::socket control_;
  asio::streambuf lines_;
  std::unique_ptr<testkit::ChildProcess> peer_;
  int to_peer_ = -1, bulk_to_peer_ = -1;
};

}  // namespace

int transport_benchmark(int argc, char** argv) {
  cli::Options o("bench transport", "[options]",
                 "Between this process and a peer process over loopback, per message size: one-way throughput and\n"
                 "round-trip time of raw UCX (the data plane), of the pipeline's activation path (Bulk: floats in,\n"
                 "floats out) and of a plain TCP socket (the baseline). Says whether the activation path stays within\n"
                 "1.5x of raw UCX. The two processes share memory (UCX's sysv and cma transports); set\n"
                 "BANYAN_SHARED_MEMORY=0 to measure loopback tcp instead, UCX_TLS to pick UCX's transports.");
  o.add("--sizes", "LIST", "message sizes in KiB", "4,64,1024,16384,65536");
  o.add("--megabytes", "N", "MB sent one way per size and path (at least 8 messages, at most 10000)", "512");
  o.add("--repeats", "N", "runs per figure (the median is reported)", "3");
  o.add("--peer", "UCX,BULK", "(internal) run as the peer of a driver whose data planes listen on these ports");
  o.add("--out", "FILE", "JSON result file", "bench-transport.json");
  if (!o.parse(argc, argv)) return 0;
  if (o.has("--peer")) {
    const auto ports = o.list("--peer");
    if (ports.size() != 2) throw cli::UsageError("--peer needs UCX,BULK ports");
    return run_transport_peer(std::stoi(ports[0]), std::stoi(ports[1]));
  }
  const double megabytes = o.integer("--megabytes");
  const int repeats = o.integer("--repeats");
  if (megabytes < 1 || repeats < 1) throw cli::UsageError("--megabytes and --repeats must be positive");

  Driver driver;
  driver.start_peer();
  nlohmann::json rows = nlohmann::json::array();
  bool within = true;
  std::printf("%9s | %23s | %23s | %23s | %s\n", "", "raw UCX", "activation path", "TCP socket", "activation path");
  std::printf("%9s | %11s %11s | %11s %11s | %11s %11s | %s\n", "size", "MB/s", "RTT us", "MB/s", "RTT us", "MB/s", "RTT us",
              "vs raw UCX (time)");
  for (const auto& kib : o.list("--sizes")) {
    const std::size_t bytes = std::size_t(std::stoul(kib)) << 10;
    const int count = int(std::clamp(megabytes * 1e6 / double(bytes), 8.0, 10000.0));
    const int trips = std::max(5, count / 4);
    // Each figure the median of --repeats runs, the three paths taking turns: this machine is shared.
    std::vector<Figures> raws, paths, tcps;
    for (int r = 0; r < repeats; ++r) {
      raws.push_back(driver.raw_ucx(bytes, count, trips));
      paths.push_back(driver.activation_path(bytes, count, trips));
      tcps.push_back(driver.tcp(bytes, count, trips));
    }
    const Figures raw = median(raws), path = median(paths), tcp = median(tcps);
    const double bw_ratio = raw.mb_per_s / path.mb_per_s, rtt_ratio = path.round_trip_us / raw.round_trip_us;
    const bool ok = bw_ratio <= 1.5 && rtt_ratio <= 1.5;
    within = within && ok;
    std::printf("%6s KiB | %11.0f %11.1f | %11.0f %11.1f | %11.0f %11.1f | %.2fx one way, %.2fx round trip%s\n",
                kib.c_str(), raw.mb_per_s, raw.round_trip_us, path.mb_per_s, path.round_trip_us, tcp.mb_per_s,
                tcp.round_trip_us, bw_ratio, rtt_ratio, ok ? "" : "  OVER 1.5x");
    std::fflush(stdout);
    rows.push_back({{"bytes", bytes}, {"messages", count}, {"round_trips", trips}, {"repeats", repeats},
                    {"ucx_mb_per_s", raw.mb_per_s}, {"ucx_round_trip_us", raw.round_trip_us},
                    {"activation_path_mb_per_s", path.mb_per_s}, {"activation_path_round_trip_us", path.round_trip_us},
                    {"tcp_mb_per_s", tcp.mb_per_s}, {"tcp_round_trip_us", tcp.round_trip_us},
                    {"ucx_vs_tcp_throughput", raw.mb_per_s / tcp.mb_per_s},
                    {"activation_path_time_vs_ucx_one_way", bw_ratio}, {"activation_path_time_vs_ucx_round_trip", rtt_ratio}});
  }
  const auto transports = driver.transports();
  driver.stop_peer();
  std::string over;
  for (const auto& t : transports) over += (over.empty() ? "" : ", ") + t;
  std::printf("UCX carried them over: %s\n", over.c_str());
  std::printf("activation path within 1.5x of raw UCX at every size: %s\n", within ? "yes" : "NO");
  const char* tls = std::getenv("UCX_TLS");
  const char* sharing = std::getenv("BANYAN_SHARED_MEMORY");
  write_json(o.text("--out"), {{"benchmark", "transport"}, {"machine", machine_description()},
                               {"ucx_tls", tls ? tls : "(default)"}, {"banyan_shared_memory", sharing ? sharing : "(default)"},
                               {"ucx_transports", transports}, {"activation_path_within_1_5x", within}, {"rows", rows}});
  return within ? 0 : 1;
}

}  // namespace banyan::bench
