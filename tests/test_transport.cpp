// The data plane (actors/transport): bytes between two UCX workers arrive whole and by tag, in
// both directions, many at once, through shared memory and over loopback tcp; peers on one
// machine share memory unless told not to, and a listener that never says who it is holds a
// connect only a bounded time; a peer that goes away fails the sends to it instead of hanging
// them; a bad address is a clear error.
#define BOOST_TEST_MODULE test_transport
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <numeric>
#include <atomic>
#include <thread>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ucp/api/ucp.h>

#include "actors/transport/data_plane.hpp"
#include "actors/transport/same_host.hpp"
#include "model/error.hpp"

using namespace banyan;
using namespace banyan::transport;
using namespace std::chrono_literals;

namespace {

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::byte((i * 2654435761u + seed) >> 13);
  return b;
}

template <class T>
T ready(std::future<T>& f) {
  BOOST_TEST_REQUIRE((f.wait_for(30s) == std::future_status::ready), "no answer in 30 s");
  return f.get();
}

// Both ways a peer on this machine is reached: shared memory (the default) and the network.
const DataPlaneOptions kModes[] = {{.shared_memory = true}, {.shared_memory = false}};

bool shares_memory(const std::vector<std::string>& transports) {
  return std::find(transports.begin(), transports.end(), "sysv") != transports.end() ||
         std::find(transports.begin(), transports.end(), "posix") != transports.end();
}

std::string listed(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += n + " ";
  return out;
}

void exchange_every_size(const DataPlaneOptions& mode) {
  DataPlane a(mode), b(mode);
  BOOST_TEST(a.port() > 0);
  const int to_b = a.connect("127.0.0.1", b.port());
  const int to_a = b.connect("127.0.0.1", a.port());

  // Receives posted before and after the sends, tags out of order, sizes from a byte to 8 MiB
  // (eager and rendezvous protocols both).
  auto big = b.receive(7);
  std::vector<std::future<void>> sent;
  sent.push_back(a.send(to_b, 9, pattern(1, 9)));
  sent.push_back(a.send(to_b, 7, pattern(8 << 20, 7)));
  sent.push_back(a.send(to_b, 8, pattern(4096, 8)));
  auto small = b.receive(9);
  auto page = b.receive(8);
  BOOST_TEST((ready(big) == pattern(8 << 20, 7)));
  BOOST_TEST((ready(small) == pattern(1, 9)));
  BOOST_TEST((ready(page) == pattern(4096, 8)));
  for (auto& s : sent) ready(s);
  sent.clear();

  // The other way, many in flight, and an empty message.
  std::vector<std::future<std::vector<std::byte>>> got;
  for (unsigned t = 100; t < 132; ++t) got.push_back(a.receive(t));
  for (unsigned t = 100; t < 132; ++t) sent.push_back(b.send(to_a, t, pattern(t * 1000, t)));
  for (unsigned t = 100; t < 132; ++t) BOOST_TEST((ready(got[t - 100]) == pattern(t * 1000, t)));
  auto empty = a.receive(1);
  sent.push_back(b.send(to_a, 1, {}));
  BOOST_TEST(ready(empty).empty());
  for (auto& s : sent) ready(s);
  BOOST_TEST_MESSAGE("shared_memory=" << mode.shared_memory << ": " << listed(a.transports(to_b)));
  BOOST_TEST(shares_memory(a.transports(to_b)) == mode.shared_memory, listed(a.transports(to_b)));
  BOOST_TEST(shares_memory(b.transports(to_a)) == mode.shared_memory, listed(b.transports(to_a)));
}

void fail_sends_to_a_peer_that_went_away(const DataPlaneOptions& mode) {
  DataPlane a(mode);
  auto b = std::make_unique<DataPlane>(mode);
  const int to_b = a.connect("127.0.0.1", b->port());
  auto first = a.send(to_b, 1, pattern(1000, 1));
  auto arrived = b->receive(1);
  BOOST_TEST((ready(arrived) == pattern(1000, 1)));
  ready(first);
  b.reset();
  // A rendezvous-sized send nobody will receive: an error, in bounded time, not a hang.
  bool failed = false;
  for (int i = 0; i < 20 && !failed; ++i) {
    auto lost = a.send(to_b, 2, pattern(4 << 20, 2));
    BOOST_TEST_REQUIRE((lost.wait_for(30s) == std::future_status::ready), "a send to a dead peer hung");
    try {
      lost.get();
    } catch (const Error& e) {
      failed = true;
      BOOST_TEST_MESSAGE(e.what());
      BOOST_TEST(std::string(e.what()).find("data plane: send failed") != std::string::npos, e.what());
    }
  }
  BOOST_TEST(failed);
  BOOST_TEST(a.failed(to_b));
}

// A UCX listener that accepts connections and never says who it is (not a data plane).
struct MuteListener {
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  ucp_listener_h listener = nullptr;
  std::vector<ucp_ep_h> accepted;
  std::atomic<bool> stop{false};
  std::thread thread;
  int port = 0;

  MuteListener() {
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_TAG | UCP_FEATURE_STREAM;
    BOOST_TEST_REQUIRE(ucp_init(&params, nullptr, &context) == UCS_OK);
    ucp_worker_params_t wp{};
    BOOST_TEST_REQUIRE(ucp_worker_create(context, &wp, &worker) == UCS_OK);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ucp_listener_params_t lp{};
    lp.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
    lp.sockaddr.addr = reinterpret_cast<const sockaddr*>(&address);
    lp.sockaddr.addrlen = sizeof address;
    lp.conn_handler = {[](ucp_conn_request_h request, void* self) {
                         auto& me = *static_cast<MuteListener*>(self);
                         ucp_ep_params_t ep{};
                         ep.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                                         UCP_EP_PARAM_FIELD_ERR_HANDLER;
                         ep.conn_request = request;
                         ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
                         ep.err_handler = {[](void*, ucp_ep_h, ucs_status_t) {}, nullptr};  // the peer leaving is expected
                         ucp_ep_h h = nullptr;
                         if (ucp_ep_create(me.worker, &ep, &h) == UCS_OK) me.accepted.push_back(h);
                       },
                       this};
    BOOST_TEST_REQUIRE(ucp_listener_create(worker, &lp, &listener) == UCS_OK);
    ucp_listener_attr_t attr{};
    attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
    BOOST_TEST_REQUIRE(ucp_listener_query(listener, &attr) == UCS_OK);
    port = ntohs(reinterpret_cast<const sockaddr_in*>(&attr.sockaddr)->sin_port);
    thread = std::thread([this] {
      while (!stop) ucp_worker_progress(worker);
    });
  }
  ~MuteListener() {
    stop = true;
    thread.join();
    ucp_listener_destroy(listener);
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = UCP_EP_CLOSE_FLAG_FORCE;
    for (ucp_ep_h ep : accepted) {
      void* r = ucp_ep_close_nbx(ep, &p);
      if (UCS_PTR_IS_PTR(r)) {
        while (ucp_request_check_status(r) == UCS_INPROGRESS) ucp_worker_progress(worker);
        ucp_request_free(r);
      }
    }
    ucp_worker_destroy(worker);
    ucp_cleanup(context);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(bytes_arrive_whole_and_by_tag) {
  for (const auto& mode : kModes) exchange_every_size(mode);
}

BOOST_AUTO_TEST_CASE(peers_on_this_machine_share_memory_and_others_do_not) {
  BOOST_TEST(is_local_address("127.0.0.1"));
  BOOST_TEST(is_local_address("127.0.0.2"));
  BOOST_TEST(!is_local_address("192.0.2.1"));  // TEST-NET-1: never a real host's
  BOOST_TEST(!is_local_address("not-an-address"));
  const std::string me = memory_identity();
  BOOST_TEST(!me.empty());
  BOOST_TEST(me.find("ipc:[") != std::string::npos, me);  // the namespaces count, not only the kernel
  BOOST_TEST(me.find("net:[") != std::string::npos, me);

  // A listener that never says who it is: connect() waits for it a bounded time, then the peer
  // is reached over the network.
  MuteListener mute;
  DataPlane a;
  const auto start = std::chrono::steady_clock::now();
  const int to_mute = a.connect("127.0.0.1", mute.port);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  BOOST_TEST(waited < 5.0);
  BOOST_TEST(!a.failed(to_mute));
  auto sent = a.send(to_mute, 1, pattern(100, 1));
  ready(sent);
  BOOST_TEST(!shares_memory(a.transports(to_mute)), listed(a.transports(to_mute)));
}

BOOST_AUTO_TEST_CASE(sends_without_copies_and_receives_into_the_callers_memory) {
  DataPlane a, b;
  const int to_b = a.connect("127.0.0.1", b.port());
  // A send keeps its owner (and so its bytes) until delivered, whatever the caller drops.
  auto owned = std::make_shared<const std::vector<std::byte>>(pattern(1 << 20, 3));
  std::weak_ptr<const std::vector<std::byte>> watch = owned;
  std::vector<std::byte> into(1 << 20);
  std::size_t asked = 0;
  auto arriving = b.receive_into(5, [&](std::size_t n) {
    asked = n;
    return into.data();
  });
  auto sent = a.send(to_b, 5, *owned, owned);
  owned.reset();
  BOOST_TEST(ready(arriving) == std::size_t(1 << 20));
  BOOST_TEST(asked == std::size_t(1 << 20));
  BOOST_TEST((into == pattern(1 << 20, 3)));
  ready(sent);
  for (int i = 0; i < 100 && !watch.expired(); ++i) std::this_thread::sleep_for(10ms);
  BOOST_TEST(watch.expired());  // let go once delivered

  // A place with no room fails its receive; the message is taken all the same and the next
  // receive gets the next message.
  auto refused = b.receive_into(6, [](std::size_t n) -> std::byte* { throw Error("no room for " + std::to_string(n)); });
  a.send(to_b, 6, pattern(300, 1));
  BOOST_TEST_REQUIRE((refused.wait_for(30s) == std::future_status::ready));
  BOOST_CHECK_THROW(refused.get(), Error);
  auto next = b.receive(6);
  a.send(to_b, 6, pattern(200, 2));
  BOOST_TEST((ready(next) == pattern(200, 2)));
}

BOOST_AUTO_TEST_CASE(a_peer_that_goes_away_fails_the_sends_to_it) {
  for (const auto& mode : kModes) fail_sends_to_a_peer_that_went_away(mode);
}

BOOST_AUTO_TEST_CASE(the_network_interface_can_be_chosen) {
  // The node's ucx_interface: `lo` carries loopback; an interface this machine lacks is an error
  // at start, not a data plane that never connects.
  DataPlane a(DataPlaneOptions{.host = "127.0.0.1", .interface = "lo"}), b(DataPlaneOptions{.host = "127.0.0.1", .interface = "lo"});
  auto arriving = b.receive(3);
  auto sent = a.send(a.connect("127.0.0.1", b.port()), 3, pattern(100, 2));
  ready(sent);
  BOOST_TEST((ready(arriving) == pattern(100, 2)));
  try {
    DataPlane c(DataPlaneOptions{.host = "127.0.0.1", .interface = "nosuch0"});
    BOOST_FAIL("a data plane started on an interface that does not exist");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()).find("nosuch0") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(bad_addresses_are_clear_errors) {
  BOOST_CHECK_EXCEPTION(DataPlane(DataPlaneOptions{.host = "not-an-address"}), Error, [](const Error& e) {
    return std::string(e.what()).find("'not-an-address' is not an IPv4 address") != std::string::npos;
  });
  DataPlane a;
  auto s = a.send(5, 1, pattern(10, 1));
  BOOST_CHECK_THROW(ready(s), Error);  // no such peer
}
