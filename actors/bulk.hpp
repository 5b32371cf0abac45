#pragma once
// The bulk of the messages between two processes (activations, logits) over this process's data
// plane (actors/transport) rather than inside CAF messages: the data plane moves a MiB several
// times faster. The floats are sent first, tagged; the CAF message that follows carries the tag.
// Shared by a process's stage links (which send forwards and take the logits back) and stage
// doors (which take the activations and send the logits back); thread-safe. No CAF here.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "actors/transport/data_plane.hpp"

namespace banyan::actors {

class Bulk {
 public:
  // Listens on bind:port (0: a free port) through `interface` (empty: UCX chooses); others reach
  // it at `host`.
  Bulk(const std::string& host, const std::string& bind, int port, const std::string& interface = "");

  const std::string& host() const { return host_; }
  int port() const { return plane_.port(); }
  // Tells this data plane from an earlier one on the same address (a restarted process).
  std::uint64_t instance() const { return instance_; }
  // A tag no other transfer from this process uses.
  std::uint64_t new_tag();

  // A new connection to the data plane at host:port (a link's, made again when it reconnects).
  int connect(const std::string& host, int port);
  // The connection to a data plane instance, made once (the doors' replies).
  int peer(const std::string& host, int port, std::uint64_t instance);

  // Sends the floats without copying them (the data plane keeps them until delivered, then
  // keeps their memory for what comes in); the future is ready once they are delivered. A send
  // that fails shows as the receiver's timeout, and in the future.
  std::future<void> send(int peer, std::uint64_t tag, std::vector<float> floats);
  // The floats sent here with `tag`; throws Error when they do not come within `timeout`.
  std::vector<float> receive(std::uint64_t tag, std::chrono::milliseconds timeout);
  // `floats` floats to fill and send, in memory sent or given back before when there is some.
  std::vector<float> buffer(std::size_t floats);
  // Floats received and done with: their memory serves what comes in next.
  void recycle(std::vector<float> floats) { give_back(std::move(floats)); }
  // Makes `count` buffers of `floats` floats ready now, as a stage's first steps would (their
  // pages are faulted in here rather than during a transfer).
  void reserve(std::size_t floats, std::size_t count);
  // The data plane itself, for what shares it (the ring of tensor shards spread over nodes).
  transport::DataPlane& plane() { return plane_; }
  // What went out and came in so far.
  std::uint64_t sent_bytes() const { return sent_bytes_; }
  std::uint64_t received_bytes() const { return received_bytes_; }

 private:
  // Buffers whose floats went out, kept for floats coming in: a fresh buffer's pages cost more
  // than the transfer on a virtual machine (bench transport). Before plane_: sends still under
  // way when it closes give their buffers back here.
  std::vector<float> take_spare(std::size_t floats);
  void give_back(std::vector<float> buffer);
  std::mutex spare_mutex_;
  std::vector<std::vector<float>> spare_;

  std::string host_;
  transport::DataPlane plane_;
  std::uint64_t instance_ = 0;
  std::mutex mutex_;
  std::uint64_t next_tag_ = 1;
  std::map<std::tuple<std::string, int, std::uint64_t>, int> peers_;
  std::atomic<std::uint64_t> sent_bytes_ = 0, received_bytes_ = 0;
};

}  // namespace banyan::actors
