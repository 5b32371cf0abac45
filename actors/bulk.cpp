#include "actors/bulk.hpp"

#include <cstring>
#include <random>

#include "model/error.hpp"

namespace banyan::actors {

Bulk::Bulk(const std::string& host, const std::string& bind, int port)
    : host_(host), plane_(transport::DataPlaneOptions{bind, port}) {
  std::random_device random;
  instance_ = (std::uint64_t(random()) << 32) | random();
}

std::uint64_t Bulk::new_tag() {
  std::lock_guard lock(mutex_);
  // Unique across processes too (a node may take forwards from two others): this instance's
  // high bits and a count. Replies are tagged with the top bit set (actors/node.cpp), so
  // requests keep it clear.
  return (instance_ & 0x7fff'ffff'0000'0000) | (next_tag_++ & 0xffff'ffff);  // the count starts at 1: never 0
}

int Bulk::connect(const std::string& host, int port) { return plane_.connect(host, port); }

int Bulk::peer(const std::string& host, int port, std::uint64_t instance) {
  std::lock_guard lock(mutex_);
  const auto key = std::make_tuple(host, port, instance);
  auto it = peers_.find(key);
  if (it == peers_.end()) it = peers_.emplace(key, plane_.connect(host, port)).first;
  return it->second;
}

void Bulk::send(int peer, std::uint64_t tag, const std::vector<float>& floats) {
  std::vector<std::byte> bytes(floats.size() * sizeof(float));
  std::memcpy(bytes.data(), floats.data(), bytes.size());
  sent_bytes_ += bytes.size();
  plane_.send(peer, tag, std::move(bytes));  // a failed send shows as the receiver's timeout
}

std::vector<float> Bulk::receive(std::uint64_t tag, std::chrono::milliseconds timeout) {
  auto arriving = plane_.receive(tag);
  if (arriving.wait_for(timeout) != std::future_status::ready)
    throw Error("the data plane brought nothing within " + std::to_string(timeout.count()) + " ms");
  const std::vector<std::byte> bytes = arriving.get();
  if (bytes.size() % sizeof(float) != 0) throw Error("the data plane brought a torn message");
  received_bytes_ += bytes.size();
  std::vector<float> floats(bytes.size() / sizeof(float));
  std::memcpy(floats.data(), bytes.data(), bytes.size());
  return floats;
}

}  // namespace banyan::actors
