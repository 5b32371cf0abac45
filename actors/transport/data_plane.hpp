#pragma once
// The data plane: bulk bytes (activations, KV blocks) between Banyan processes over UCX, beside
// CAF, which carries the control messages (it moves 1 MiB at about 75 MiB/s; UCX moves GiB/s).
// One UCP context and worker per process, driven by one thread of its own: callers hand it sends
// and receives and get futures back. Peers connect to its listener (host:port) and are
// addressed by the handle connect() returns; a message is a tag and its bytes, received by tag
// from any peer. No CAF here: the actors that use it pass its handles and tags in their messages.
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace banyan::transport {

struct DataPlaneOptions {
  std::string host = "127.0.0.1";  // the listener's address; loopback keeps UCX on `lo`
  int port = 0;                    // 0: any free port
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
  // Sends `bytes` with `tag`; the future is ready once they are delivered to the peer's worker.
  std::future<void> send(int peer, std::uint64_t tag, std::vector<std::byte> bytes);
  // The next message with `tag` from any peer, whatever its size.
  std::future<std::vector<std::byte>> receive(std::uint64_t tag);

 private:
  struct Worker;
  std::unique_ptr<Worker> worker_;
};

}  // namespace banyan::transport
