#pragma once
// The data plane: bulk bytes (activations, KV blocks) between Banyan processes over UCX, beside
// CAF, which carries the control messages (it moves 1 MiB at about 75 MiB/s; UCX moves GiB/s).
// One UCP context and worker per process, driven by one thread of its own: callers hand it sends
// and receives and get futures back. Peers connect to its listener (host:port) and are
// addressed by the handle connect() returns; a message is a tag and its bytes, received by tag
// from any peer. A peer on the same machine is reached through shared memory once its listener
// has said who it is; the network connection stays open beside it, and its failure is the
// peer's failure (a shared-memory connection cannot tell a dead peer). No CAF here: the actors
// that use it pass its handles and tags in their messages.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace banyan::transport {

struct DataPlaneOptions {
  std::string host = "127.0.0.1";  // the listener's address; loopback keeps UCX on `lo`
  int port = 0;                    // 0: any free port
  std::string interface;           // the network interface UCX uses (eth1); empty: UCX chooses
  // Peers on this machine (same kernel and namespaces) send through shared memory; false keeps
  // every peer on the network (loopback tcp for local ones), as BANYAN_SHARED_MEMORY=0 does.
  bool shared_memory = true;
};

class DataPlane {
 public:
  explicit DataPlane(const DataPlaneOptions& options = {});  // throws Error naming what failed
  ~DataPlane();  // fails what is still pending
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  int port() const;  // the listener's port
  // A peer's data plane, by its listener; returns its handle for send(). A dead or unreachable
  // peer fails the sends to it (with an Error) instead of hanging them.
  int connect(const std::string& host, int port);
  // Whether the connection `peer` failed (its process went away): connect again to reach it.
  bool failed(int peer) const;
  // The UCX transports that carry messages to `peer` (sysv, posix, cma: shared memory; tcp;
  // self), once it has carried one.
  std::vector<std::string> transports(int peer);
  // Sends `bytes` with `tag`, without copying them: `owner` keeps them alive until they are
  // delivered to the peer's worker, when the future is ready.
  std::future<void> send(int peer, std::uint64_t tag, std::span<const std::byte> bytes, std::shared_ptr<const void> owner);
  std::future<void> send(int peer, std::uint64_t tag, std::vector<std::byte> bytes);

  // Where a message of `size` bytes goes: called on the data plane's thread when it arrives.
  // The memory must stay valid until the receive is done (own it in the function if the caller
  // may stop waiting). Receiving into memory that is used again spares fresh pages, which cost
  // more than the copy on a virtual machine (bench transport).
  using Place = std::function<std::byte*(std::size_t size)>;
  // The next message with `tag` from any peer, whatever its size, into `place`; the future
  // holds its size.
  std::future<std::size_t> receive_into(std::uint64_t tag, Place place);
  // The same into a vector of its own.
  std::future<std::vector<std::byte>> receive(std::uint64_t tag);

 private:
  // Called once, on the data plane's thread, when the receive is done or failed.
  using Complete = std::function<void(std::size_t size, std::exception_ptr failure)>;
  void post_receive(std::uint64_t tag, Place place, Complete complete);

  struct Worker;
  std::unique_ptr<Worker> worker_;
};

}  // namespace banyan::transport
