#include "bench/transport_peer.hpp"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <boost/asio.hpp>
#include <cstdio>
#include <sstream>

#include "actors/bulk.hpp"
#include "actors/transport/data_plane.hpp"
#include "model/error.hpp"

namespace banyan::bench {

namespace asio = boost::asio;
using asio::ip::tcp;
namespace tags = transport_tags;

int run_transport_peer(int driver_ucx_port, int driver_bulk_port) {
  transport::DataPlane plane;
  actors::Bulk bulk("127.0.0.1", "127.0.0.1", 0);
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::printf("transport peer ready: tcp=%d ucx=%d bulk=%d\n", int(acceptor.local_endpoint().port()), plane.port(),
              bulk.port());
  std::fflush(stdout);
  tcp::socket control = acceptor.accept();
  control.set_option(tcp::no_delay(true));
  const int to_driver = plane.connect("127.0.0.1", driver_ucx_port);
  const int bulk_to_driver = bulk.connect("127.0.0.1", driver_bulk_port);
  const auto timeout = std::chrono::seconds(60);

  asio::streambuf lines;
  // The bytes after a command line may already sit in `lines`, read with it.
  const auto read_exact = [&](std::vector<std::byte>& into) {
    const std::size_t buffered = std::min(lines.size(), into.size());
    asio::buffer_copy(asio::buffer(into), lines.data(), buffered);
    lines.consume(buffered);
    asio::read(control, asio::buffer(into.data() + buffered, into.size() - buffered));
  };
  for (;;) {
    asio::read_until(control, lines, '\n');
    std::istream in(&lines);
    std::string line;
    std::getline(in, line);
    std::istringstream command(line);
    std::string phase;
    std::size_t bytes = 0, count = 0;
    command >> phase >> bytes >> count;
    if (phase == "quit") return 0;
    std::vector<std::byte> buffer(bytes);
    if (phase.rfind("bulk", 0) == 0) bulk.reserve(bytes / sizeof(float), 2);  // one coming in, one going back
    const auto into_buffer = [&](std::size_t size) {
      if (size != bytes) throw Error(phase + ": a message of " + std::to_string(size) + " bytes, expected " + std::to_string(bytes));
      return buffer.data();
    };
    for (std::size_t i = 0; i < count; ++i) {
      if (phase == "ucx_bw") {
        plane.receive_into(tags::raw_one_way, into_buffer).get();
      } else if (phase == "ucx_rtt") {
        plane.receive_into(tags::raw_there, into_buffer).get();
        plane.send(to_driver, tags::raw_back, buffer, nullptr).get();  // sent before the buffer is used again
      } else if (phase == "bulk_bw") {
        bulk.recycle(bulk.receive(tags::bulk_one_way, timeout));  // as a stage passes them on
      } else if (phase == "bulk_rtt") {
        bulk.send(bulk_to_driver, tags::bulk_back, bulk.receive(tags::bulk_there, timeout));
      } else if (phase == "tcp_bw") {
        read_exact(buffer);
      } else if (phase == "tcp_rtt") {
        read_exact(buffer);
        asio::write(control, asio::buffer(buffer));
      } else {
        throw Error("transport peer: unknown phase '" + phase + "'");
      }
    }
    asio::write(control, asio::buffer(std::string("ok\n")));
  }
}

}  // namespace banyan::bench
