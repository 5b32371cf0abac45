#include "actors/transport/data_plane.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <net/if.h>
#include <netinet/in.h>
#include <regex>
#include <set>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <thread>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include "actors/transport/same_host.hpp"
#include "model/error.hpp"

namespace banyan::transport {

namespace {

void check(ucs_status_t s, const std::string& what) {
  if (s != UCS_OK) throw Error("data plane: " + what + ": " + ucs_status_string(s));
}

sockaddr_in socket_address(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(std::uint16_t(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) throw Error("data plane: '" + host + "' is not an IPv4 address");
  return a;
}

// What a listener sends each peer that connects, on the connection's byte stream: who it is
// (memory_identity) and its worker's address, through which a peer with the same identity
// connects again over shared memory.
struct WelcomeHeader {
  std::uint32_t identity_size = 0;
  std::uint32_t address_size = 0;
};
constexpr std::uint32_t kMaxWelcome = 1u << 20;
// A listener answers at once; past this the peer is reached over the network only.
constexpr auto kWelcomeWait = std::chrono::seconds(2);

// Sends and receives move plain bytes.
ucp_request_param_t bytes_param() {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE;
  p.datatype = ucp_dt_make_contig(1);
  return p;
}

}  // namespace

// Everything UCX is touched by the worker thread only (UCS_THREAD_MODE_SINGLE); callers queue
// commands, which the thread runs between progress calls.
struct DataPlane::Worker {
  struct Send {
    ucp_ep_h ep = nullptr;
    void* request = nullptr;
    std::span<const std::byte> bytes;
    std::shared_ptr<const void> owner;  // keeps `bytes` until delivered
    std::promise<void> done;
  };
  // A peer: the connection to its listener, and beside it, once the listener has welcomed us
  // and shares our memory, the endpoint that carries the messages.
  struct Peer {
    ucp_ep_h control = nullptr;
    ucp_ep_h shared = nullptr;
    ucp_ep_h carrier() const { return shared ? shared : control; }
  };
  // connect() waiting for the listener's welcome (two stream receives: header, then body).
  struct Greeting {
    int peer = 0;
    WelcomeHeader header;
    std::vector<std::byte> body;
    void* request = nullptr;  // the receive under way
    bool body_asked = false;
    std::chrono::steady_clock::time_point deadline;
    std::promise<int> connected;
    bool answered = false;  // connect() has its handle; the greeting only waits for UCX to let go
  };
  struct Receive {
    std::uint64_t tag;
    bool matched = false;     // its message has arrived and is being received
    void* request = nullptr;  // the receive under way; none when it completed at once
    Place place;
    std::size_t size = 0;
    std::exception_ptr failure;     // the place threw
    std::vector<std::byte> discard;  // then the message lands here
    Complete complete;
  };

  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  ucp_listener_h listener = nullptr;
  int port = 0;
  int wake_fd = -1, epoll_fd = -1;
  std::thread thread;

  std::mutex m;
  std::deque<std::function<void()>> commands;  // run on the worker thread
  bool stop = false;
  std::set<int> failed_peers;  // handles whose connection failed

  // Set at start, read-only after: memory_identity(), or empty when this plane shares no memory.
  std::string identity;

  // Worker thread only:
  std::vector<std::byte> welcome;        // header, identity, worker address
  std::vector<Peer> peers;               // by handle
  std::map<ucp_ep_h, std::string> dead;  // endpoints whose link failed, and why
  std::vector<ucp_ep_h> accepted;        // endpoints of peers that connected to us
  std::vector<ucp_ep_h> to_welcome;      // accepted, not yet sent the welcome
  std::vector<void*> welcomes;           // welcome sends under way
  std::list<Greeting> greetings;
  std::deque<std::shared_ptr<Send>> sends;  // shared: the commands that queue them are copyable
  std::deque<std::shared_ptr<Send>> abandoned;  // failed to the caller, still held by UCX
  std::deque<std::shared_ptr<Receive>> receives;

  explicit Worker(const DataPlaneOptions& o) {
    try {
      start(o);
    } catch (...) {
      release();  // the destructor does not run for a constructor that throws
      throw;
    }
    thread = std::thread([this] { run(); });
  }

  // Everything but the thread; on failure, what was made is left for release().
  void start(const DataPlaneOptions& o) {
    const sockaddr_in address = socket_address(o.host, o.port);
    if (!o.interface.empty() && ::if_nametoindex(o.interface.c_str()) == 0)  // UCX would only warn
      throw Error("data plane: this machine has no network interface '" + o.interface + "'");
    ucp_config_t* config = nullptr;
    check(ucp_config_read(nullptr, nullptr, &config), "reading the UCX configuration");
    // The interface asked for; loopback data planes (tests, one node) stay on `lo`: UCX would
    // otherwise try every device. UCX_NET_DEVICES in the environment wins over both.
    const std::string device = !o.interface.empty() ? o.interface : o.host.rfind("127.", 0) == 0 ? "lo" : "";
    if (!device.empty() && std::getenv("UCX_NET_DEVICES") == nullptr) ucp_config_modify(config, "NET_DEVICES", device.c_str());
    // A restarted process listens on its port again although connections of the one before
    // linger there (TIME_WAIT).
    ucp_config_modify(config, "CM_REUSEADDR", "y");
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_TAG | UCP_FEATURE_STREAM | UCP_FEATURE_WAKEUP;
    const ucs_status_t s = ucp_init(&params, config, &context);
    ucp_config_release(config);
    check(s, "starting UCX");
    ucp_worker_params_t wp{};
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;
    check(ucp_worker_create(context, &wp, &worker), "creating the UCX worker");
    const char* sharing = std::getenv("BANYAN_SHARED_MEMORY");  // "0": the network only, for comparison
    identity = o.shared_memory && !(sharing && std::string(sharing) == "0") ? memory_identity() : "";
    prepare_welcome();

    ucp_listener_params_t lp{};
    lp.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
    lp.sockaddr.addr = reinterpret_cast<const sockaddr*>(&address);
    lp.sockaddr.addrlen = sizeof address;
    lp.conn_handler.cb = [](ucp_conn_request_h request, void* self) { static_cast<Worker*>(self)->accept(request); };
    lp.conn_handler.arg = this;
    check(ucp_listener_create(worker, &lp, &listener), "listening on " + o.host + ":" + std::to_string(o.port));
    ucp_listener_attr_t attr{};
    attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
    check(ucp_listener_query(listener, &attr), "reading the listener's port");
    port = ntohs(reinterpret_cast<const sockaddr_in*>(&attr.sockaddr)->sin_port);

    int worker_fd = -1;
    check(ucp_worker_get_efd(worker, &worker_fd), "getting the worker's event descriptor");
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    for (int fd : {worker_fd, wake_fd}) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.fd = fd;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &e);
    }
  }

  void prepare_welcome() {
    ucp_address_t* address = nullptr;
    std::size_t address_size = 0;
    check(ucp_worker_get_address(worker, &address, &address_size), "reading the worker's address");
    const WelcomeHeader header{std::uint32_t(identity.size()), std::uint32_t(address_size)};
    welcome.resize(sizeof header + identity.size() + address_size);
    std::memcpy(welcome.data(), &header, sizeof header);
    std::memcpy(welcome.data() + sizeof header, identity.data(), identity.size());
    std::memcpy(welcome.data() + sizeof header + identity.size(), address, address_size);
    ucp_worker_release_address(worker, address);
  }

  void release() {
    if (wake_fd >= 0) ::close(wake_fd);
    if (epoll_fd >= 0) ::close(epoll_fd);
    if (listener) ucp_listener_destroy(listener);
    if (worker) ucp_worker_destroy(worker);
    if (context) ucp_cleanup(context);
  }

  ~Worker() {  // the thread releases everything once it stops
    post([this] { stop = true; });
    thread.join();
  }

  void post(std::function<void()> command) {
    // The wake-up is written under the lock: once the thread has the command it may be the last
    // (stop) and close wake_fd.
    std::lock_guard lock(m);
    commands.push_back(std::move(command));
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }

  // Endpoint parameters of the network connections: a failed link is reported (to failed())
  // rather than left to hang the operations on it. Under this PEER error mode UCX 1.13 leaves
  // out its shared-memory transports (they cannot report a dead peer), so these stay on the
  // network, also between network namespaces of one machine, where shared memory would lose
  // its wake-ups (abstract Unix sockets).
  ucp_ep_params_t endpoint_params(std::uint64_t fields) {
    ucp_ep_params_t ep{};
    ep.field_mask = fields | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler = {&Worker::failed, this};
    return ep;
  }

  void accept(ucp_conn_request_h request) {
    ucp_ep_params_t ep = endpoint_params(UCP_EP_PARAM_FIELD_CONN_REQUEST);
    ep.conn_request = request;
    ucp_ep_h h = nullptr;
    if (ucp_ep_create(worker, &ep, &h) != UCS_OK) return;
    accepted.push_back(h);
    to_welcome.push_back(h);  // sent after this progress call returns
  }

  // The network connection failing fails the peer, and its shared-memory endpoint with it (which
  // has no error mode of its own: UCX would let sends to a dead peer wait forever).
  static void failed(void* self, ucp_ep_h ep, ucs_status_t status) {
    Worker& w = *static_cast<Worker*>(self);
    const std::string why = ucs_status_string(status);
    w.dead[ep] = why;
    for (std::size_t i = 0; i < w.peers.size(); ++i) {
      Peer& p = w.peers[i];
      if (p.control != ep) continue;
      w.dead[p.control] = why;
      if (p.shared) w.dead[p.shared] = why;
      std::lock_guard lock(w.m);
      w.failed_peers.insert(int(i));
    }
  }

  void send_welcomes() {
    const ucp_request_param_t p = bytes_param();
    for (ucp_ep_h ep : to_welcome) {
      void* r = ucp_stream_send_nbx(ep, welcome.data(), welcome.size(), &p);
      if (UCS_PTR_IS_PTR(r)) welcomes.push_back(r);
    }
    to_welcome.clear();
    std::erase_if(welcomes, [](void* r) {
      if (ucp_request_check_status(r) == UCS_INPROGRESS) return false;
      ucp_request_free(r);
      return true;
    });
  }

  // A greeting's next stream receive (WAITALL: the whole `size` bytes); false when it failed.
  bool receive_welcome(Greeting& g, void* into, std::size_t size) {
    ucp_request_param_t p = bytes_param();
    p.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = UCP_STREAM_RECV_FLAG_WAITALL;
    std::size_t length = 0;
    void* r = ucp_stream_recv_nbx(peers[std::size_t(g.peer)].control, into, size, &length, &p);
    if (UCS_PTR_IS_ERR(r)) return false;
    g.request = r;  // null: received at once
    return true;
  }

  // Moves each greeting on; connect() gets its handle once the welcome is read (and the shared
  // endpoint made), or the connection failed, or the welcome is late.
  void greet() {
    const auto now = std::chrono::steady_clock::now();
    for (auto it = greetings.begin(); it != greetings.end();) {
      Greeting& g = *it;
      ucs_status_t status = g.request ? ucp_request_check_status(g.request) : UCS_OK;
      if (status != UCS_INPROGRESS && g.request) ucp_request_free(g.request), g.request = nullptr;
      if (!g.answered) {
        bool over = status != UCS_OK && status != UCS_INPROGRESS;
        if (status == UCS_OK && !g.body_asked) {
          g.body_asked = true;
          const std::size_t size = std::size_t(g.header.identity_size) + g.header.address_size;
          over = size > kMaxWelcome;
          if (!over) {
            g.body.resize(size);
            over = !receive_welcome(g, g.body.data(), size);
            status = g.request ? UCS_INPROGRESS : UCS_OK;
          }
        }
        if (status == UCS_OK && g.body_asked && !over) share_memory(g);
        if (status == UCS_OK || over || dead.count(peers[std::size_t(g.peer)].control) || now > g.deadline) {
          g.answered = true;
          g.connected.set_value(g.peer);
        }
      }
      if (g.answered && !g.request) it = greetings.erase(it);
      else ++it;
    }
  }

  // The second endpoint, by the peer's worker address: UCX carries it over sysv shared memory
  // (and cma). Without an error mode, which would leave shared memory out (see endpoint_params):
  // its network connection answers for it.
  void share_memory(const Greeting& g) {
    const std::string theirs(reinterpret_cast<const char*>(g.body.data()), g.header.identity_size);
    if (theirs != identity) return;
    ucp_ep_params_t ep{};
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
    ep.address = reinterpret_cast<const ucp_address_t*>(g.body.data() + g.header.identity_size);
    ucp_ep_h h = nullptr;
    if (ucp_ep_create(worker, &ep, &h) == UCS_OK) peers[std::size_t(g.peer)].shared = h;
  }

  int connect(const std::string& host, int peer_port) {
    const sockaddr_in address = socket_address(host, peer_port);
    const bool greet = !identity.empty() && is_local_address(host);
    std::promise<int> handle;
    auto result = handle.get_future();
    post([&] {
      ucp_ep_params_t ep = endpoint_params(UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR);
      ep.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
      ep.sockaddr.addr = reinterpret_cast<const sockaddr*>(&address);
      ep.sockaddr.addrlen = sizeof address;
      ucp_ep_h h = nullptr;
      const ucs_status_t s = ucp_ep_create(worker, &ep, &h);
      if (s != UCS_OK) {
        handle.set_exception(std::make_exception_ptr(
            Error("data plane: cannot connect to " + host + ":" + std::to_string(peer_port) + ": " + ucs_status_string(s))));
        return;
      }
      peers.push_back({h});
      const int peer = int(peers.size()) - 1;
      if (!greet) return handle.set_value(peer);
      Greeting& g = greetings.emplace_back();
      g.peer = peer;
      g.deadline = std::chrono::steady_clock::now() + kWelcomeWait;
      g.connected = std::move(handle);
      if (!receive_welcome(g, &g.header, sizeof g.header)) {
        g.answered = true;
        g.connected.set_value(peer);
      }
    });
    return result.get();
  }

  // Worker thread: moves every pending operation as far as it goes; returns whether any is
  // under way (a send, or a receive whose message has begun to arrive).
  bool advance() {
    while (ucp_worker_progress(worker) != 0) {
    }
    send_welcomes();
    greet();
    bool busy = !sends.empty() || !greetings.empty() || !welcomes.empty();
    std::erase_if(abandoned, [](const std::shared_ptr<Send>& s) {
      if (ucp_request_check_status(s->request) == UCS_INPROGRESS) return false;
      ucp_request_free(s->request);
      return true;
    });
    for (auto it = sends.begin(); it != sends.end();) {
      Send& s = **it;
      const ucs_status_t status = s.request ? ucp_request_check_status(s.request) : UCS_OK;
      const auto dead_peer = dead.find(s.ep);
      if (status == UCS_INPROGRESS && dead_peer == dead.end()) {
        ++it;
        continue;
      }
      // The bytes go back before the caller hears: a caller waiting to reuse them (Bulk's spare
      // buffers) finds them free.
      if (status != UCS_INPROGRESS) s.owner.reset();
      if (status == UCS_OK) {
        s.done.set_value();
      } else {
        s.done.set_exception(std::make_exception_ptr(Error(
            "data plane: send failed: " + std::string(dead_peer != dead.end() ? dead_peer->second : ucs_status_string(status)))));
      }
      if (status == UCS_INPROGRESS) abandoned.push_back(*it);  // its bytes stay until UCX lets go
      else if (s.request) ucp_request_free(s.request);
      it = sends.erase(it);
    }
    for (auto it = receives.begin(); it != receives.end();) {
      Receive& r = **it;
      if (!r.matched) {  // is its message here?
        ucp_tag_recv_info_t info{};
        ucp_tag_message_h message = ucp_tag_probe_nb(worker, r.tag, ~ucp_tag_t(0), 1, &info);
        if (!message) {
          ++it;
          continue;
        }
        r.size = info.length;
        std::byte* into = nullptr;
        try {
          into = r.place(info.length);
        } catch (...) {  // no room for it: taken off the wire all the same, and the receive fails
          r.failure = std::current_exception();
          r.discard.resize(info.length);
          into = r.discard.data();
        }
        const ucp_request_param_t p = bytes_param();
        void* request = ucp_tag_msg_recv_nbx(worker, into, info.length, message, &p);
        if (UCS_PTR_IS_ERR(request)) {
          r.complete(0, std::make_exception_ptr(
              Error(std::string("data plane: receive failed: ") + ucs_status_string(UCS_PTR_STATUS(request)))));
          it = receives.erase(it);
          continue;
        }
        r.matched = true;
        r.request = request;
      }
      const ucs_status_t status = r.request ? ucp_request_check_status(r.request) : UCS_OK;
      if (status == UCS_INPROGRESS) {
        busy = true;
        ++it;
        continue;
      }
      if (status == UCS_OK) {
        r.complete(r.size, r.failure);
      } else {
        r.complete(0, 
            std::make_exception_ptr(Error(std::string("data plane: receive failed: ") + ucs_status_string(status))));
      }
      if (r.request) ucp_request_free(r.request);
      it = receives.erase(it);
    }
    return busy;
  }

  void run() {
    for (;;) {
      std::deque<std::function<void()>> todo;
      {
        std::lock_guard lock(m);
        todo.swap(commands);
      }
      for (auto& c : todo) c();
      if (stop) break;
      // While a transfer is under way, poll (a rendezvous over tcp moves on progress calls);
      // otherwise sleep until UCX or a caller has something (arm fails while events wait).
      const bool busy = advance();
      if (ucp_worker_arm(worker) == UCS_OK) wait(busy ? 1 : 100);
    }
    shutdown();
  }

  void wait(int milliseconds) {
    epoll_event events[2];
    const int n = ::epoll_wait(epoll_fd, events, 2, milliseconds);
    for (int i = 0; i < n; ++i)
      if (events[i].data.fd == wake_fd) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_fd, &count, sizeof count);
      }
  }

  void shutdown() {
    const auto gone = std::make_exception_ptr(Error("data plane: closed"));
    // Callers hear at once; UCX lets go of the requests once the endpoints are closed.
    std::vector<void*> requests(welcomes);
    for (auto& s : sends) {
      s->done.set_exception(gone);
      abandoned.push_back(s);
    }
    for (auto& s : abandoned) requests.push_back(s->request);
    for (auto& r : receives) {
      r->complete(0, gone);
      if (r->request) ucp_request_cancel(worker, r->request), requests.push_back(r->request);
    }
    for (auto& g : greetings) {
      if (!g.answered) g.connected.set_value(g.peer);
      if (g.request) ucp_request_cancel(worker, g.request), requests.push_back(g.request);
    }
    std::vector<ucp_ep_h> endpoints(accepted);
    for (const Peer& peer : peers) {
      endpoints.push_back(peer.control);
      if (peer.shared) endpoints.push_back(peer.shared);
    }
    std::vector<void*> closing;
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = UCP_EP_CLOSE_FLAG_FORCE;
    for (ucp_ep_h ep : endpoints) {
      void* r = ucp_ep_close_nbx(ep, &p);
      if (UCS_PTR_IS_PTR(r)) closing.push_back(r);
    }
    for (void* r : closing) {
      while (ucp_request_check_status(r) == UCS_INPROGRESS) ucp_worker_progress(worker);
      ucp_request_free(r);
    }
    for (void* r : requests)
      if (r) ucp_request_free(r);
    sends.clear();
    abandoned.clear();
    receives.clear();
    greetings.clear();
    release();
  }
};

DataPlane::DataPlane(const DataPlaneOptions& options) : worker_(std::make_unique<Worker>(options)) {}

DataPlane::~DataPlane() = default;

int DataPlane::port() const { return worker_->port; }

int DataPlane::connect(const std::string& host, int port) { return worker_->connect(host, port); }

bool DataPlane::failed(int peer) const {
  std::lock_guard lock(worker_->m);
  return worker_->failed_peers.count(peer) > 0;
}

std::vector<std::string> DataPlane::transports(int peer) {
  std::promise<std::vector<std::string>> named;
  auto result = named.get_future();
  Worker* w = worker_.get();
  w->post([w, peer, &named] {
    if (peer < 0 || std::size_t(peer) >= w->peers.size()) return named.set_value({});
    // UCX says only in its printout: "lane[1]:  2:sysv/memory.0 md[2] -> ..."
    char* text = nullptr;
    std::size_t size = 0;
    FILE* out = ::open_memstream(&text, &size);
    ucp_ep_print_info(w->peers[std::size_t(peer)].carrier(), out);
    std::fclose(out);
    std::vector<std::string> names;
    static const std::regex lane(R"(lane\[\d+\]:\s+\d+:(\w+)/)");
    const std::string printed(text, size);
    std::free(text);
    for (std::sregex_iterator it(printed.begin(), printed.end(), lane), end; it != end; ++it)
      if (std::find(names.begin(), names.end(), (*it)[1].str()) == names.end()) names.push_back((*it)[1]);
    named.set_value(names);
  });
  return result.get();
}

std::future<void> DataPlane::send(int peer, std::uint64_t tag, std::span<const std::byte> bytes,
                                  std::shared_ptr<const void> owner) {
  auto s = std::make_shared<Worker::Send>();
  s->bytes = bytes;
  s->owner = std::move(owner);
  auto done = s->done.get_future();
  Worker* w = worker_.get();
  w->post([w, peer, tag, s] {
    if (peer < 0 || std::size_t(peer) >= w->peers.size()) {
      s->done.set_exception(std::make_exception_ptr(Error("data plane: no peer " + std::to_string(peer))));
      return;
    }
    s->ep = w->peers[std::size_t(peer)].carrier();
    const ucp_request_param_t p = bytes_param();
    void* request = ucp_tag_send_nbx(s->ep, s->bytes.data(), s->bytes.size(), tag, &p);
    if (UCS_PTR_IS_ERR(request)) {
      s->done.set_exception(std::make_exception_ptr(
          Error(std::string("data plane: send failed: ") + ucs_status_string(UCS_PTR_STATUS(request)))));
      return;
    }
    s->request = request;  // null: delivered at once
    w->sends.push_back(s);
  });
  return done;
}

std::future<void> DataPlane::send(int peer, std::uint64_t tag, std::vector<std::byte> bytes) {
  auto owned = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  return send(peer, tag, *owned, owned);
}

void DataPlane::post_receive(std::uint64_t tag, Place place, Complete complete) {
  auto r = std::make_shared<Worker::Receive>();
  r->tag = tag;
  r->place = std::move(place);
  r->complete = std::move(complete);
  Worker* w = worker_.get();
  w->post([w, r] { w->receives.push_back(r); });
}

std::future<std::size_t> DataPlane::receive_into(std::uint64_t tag, Place place) {
  auto done = std::make_shared<std::promise<std::size_t>>();
  post_receive(tag, std::move(place), [done](std::size_t size, std::exception_ptr failure) {
    failure ? done->set_exception(failure) : done->set_value(size);
  });
  return done->get_future();
}

std::future<std::vector<std::byte>> DataPlane::receive(std::uint64_t tag) {
  auto bytes = std::make_shared<std::vector<std::byte>>();
  auto done = std::make_shared<std::promise<std::vector<std::byte>>>();
  post_receive(
      tag,
      [bytes](std::size_t n) {
        bytes->resize(n);
        return bytes->data();
      },
      [done, bytes](std::size_t, std::exception_ptr failure) {
        failure ? done->set_exception(failure) : done->set_value(std::move(*bytes));
      });
  return done->get_future();
}

}  // namespace banyan::transport
