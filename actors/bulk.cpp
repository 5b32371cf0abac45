#include "actors/bulk.hpp"

#include <algorithm>
#include <random>

#include "model/error.hpp"

namespace banyan::actors {

Bulk::Bulk(const std::string& host, const std::string& bind, int port, const std::string& interface)
    : host_(host), plane_(transport::DataPlaneOptions{bind, port, interface}) {
  std::random_device random;
  instance_ = (std::uint64_t(random()) << 32) | random();
}

std::uint64_t Bulk::new_tag() {
  std::lock_guard lock(mutex_);
  // Unique across processes too (a node may take forwards from two others): this instance's
  // high bits and a count. Logits are tagged with the top bit set (actors/node_link.cpp), so
  // requests keep it clear; bit 62 is always set, which the rings sharing the data plane
  // (actors/transport/ring_all_reduce.hpp) keep clear.
  return (std::uint64_t(1) << 62) | (instance_ & 0x3fff'ffff'0000'0000) | (next_tag_++ & 0xffff'ffff);
}

int Bulk::connect(const std::string& host, int port) { return plane_.connect(host, port); }

int Bulk::peer(const std::string& host, int port, std::uint64_t instance) {
  std::lock_guard lock(mutex_);
  const auto key = std::make_tuple(host, port, instance);
  auto it = peers_.find(key);
  if (it == peers_.end()) it = peers_.emplace(key, plane_.connect(host, port)).first;
  return it->second;
}

namespace {
constexpr std::size_t kSpareBuffers = 8;
constexpr std::size_t kSpareBytes = std::size_t(512) << 20;
}  // namespace

std::vector<float> Bulk::take_spare(std::size_t floats) {
  std::lock_guard lock(spare_mutex_);
  if (spare_.empty()) return {};
  // One that holds the floats, else the largest (it grows).
  auto fits = [floats](const std::vector<float>& b) { return b.capacity() >= floats; };
  auto it = std::find_if(spare_.begin(), spare_.end(), fits);
  if (it == spare_.end())
    it = std::max_element(spare_.begin(), spare_.end(), [](const auto& a, const auto& b) { return a.capacity() < b.capacity(); });
  std::vector<float> out = std::move(*it);
  spare_.erase(it);
  return out;
}

std::vector<float> Bulk::buffer(std::size_t floats) {
  std::vector<float> out = take_spare(floats);
  out.resize(floats);
  return out;
}

void Bulk::reserve(std::size_t floats, std::size_t count) {
  std::vector<std::vector<float>> made;
  for (std::size_t i = 0; i < count; ++i) made.push_back(buffer(floats));
  for (auto& b : made) give_back(std::move(b));
}

void Bulk::give_back(std::vector<float> buffer) {
  std::lock_guard lock(spare_mutex_);
  std::size_t bytes = buffer.capacity() * sizeof(float);
  for (const auto& b : spare_) bytes += b.capacity() * sizeof(float);
  if (spare_.size() < kSpareBuffers && bytes <= kSpareBytes) spare_.push_back(std::move(buffer));
}

std::future<void> Bulk::send(int peer, std::uint64_t tag, std::vector<float> floats) {
  sent_bytes_ += floats.size() * sizeof(float);
  auto owned = std::shared_ptr<const std::vector<float>>(new std::vector<float>(std::move(floats)),
                                                         [this](const std::vector<float>* sent) {
                                                           give_back(std::move(*const_cast<std::vector<float>*>(sent)));
                                                           delete sent;
                                                         });
  return plane_.send(peer, tag, std::as_bytes(std::span(*owned)), owned);
}

std::vector<float> Bulk::receive(std::uint64_t tag, std::chrono::milliseconds timeout) {
  // Straight into the floats (a spare buffer's, when there is one); the place owns them, so a
  // receive given up on cannot write into freed memory.
  auto floats = std::make_shared<std::vector<float>>();
  auto arriving = plane_.receive_into(tag, [this, floats](std::size_t n) {
    const std::size_t count = (n + sizeof(float) - 1) / sizeof(float);
    *floats = take_spare(count);
    floats->resize(count);  // zero-fills only what the spare buffer never held
    return reinterpret_cast<std::byte*>(floats->data());
  });
  if (arriving.wait_for(timeout) != std::future_status::ready)
    throw Error("the data plane brought nothing within " + std::to_string(timeout.count()) + " ms");
  const std::size_t size = arriving.get();
  if (size % sizeof(float) != 0) throw Error("the data plane brought a torn message");
  received_bytes_ += size;
  return std::move(*floats);
}

}  // namespace banyan::actors
