#include "model/paged_weights.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <sys/mman.h>
#include <unistd.h>

#include "model/error.hpp"

namespace banyan {

namespace {

std::uintptr_t page_size() {
  static const auto size = std::uintptr_t(::sysconf(_SC_PAGESIZE));
  return size;
}

// Maps the range's pages in from the page cache (or the disk): one call on kernels with
// MADV_POPULATE_READ (5.14+), else a read of every page.
void populate(std::span<const std::byte> r) {
  if (r.empty()) return;
  const std::uintptr_t page = page_size(), begin = std::uintptr_t(r.data()) / page * page,
                       end = std::uintptr_t(r.data() + r.size());
  static std::atomic<bool> have_populate{true};
  if (have_populate && ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ) == 0) return;
  have_populate = false;
  std::byte sink{};
  for (std::uintptr_t p = begin; p < end; p += page) sink ^= *reinterpret_cast<const volatile std::byte*>(p);
  asm volatile("" : : "r"(sink));
}

// Unmaps the pages lying wholly inside the range (a neighbouring tensor's pages stay). The page
// cache keeps them, so a later read maps them in again, unless `evict` reclaims them from it.
void drop(std::span<const std::byte> r, bool evict) {
  const std::uintptr_t page = page_size(), begin = (std::uintptr_t(r.data()) + page - 1) / page * page,
                       end = std::uintptr_t(r.data() + r.size()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, evict ? MADV_PAGEOUT : MADV_DONTNEED);
}

// A unit's ranges in address order, those that only a converted file's alignment padding (under
// 64 bytes) separates merged: each madvise that unmaps pages costs the other cores a TLB flush,
// so a unit's matrices that lie back to back are mapped in and dropped in one call, not one per
// matrix. A wider gap may hold another unit's tensor (a norm), whose pages must stay.
std::vector<std::span<const std::byte>> merged(std::vector<std::span<const std::byte>> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) { return a.data() < b.data(); });
  std::vector<std::span<const std::byte>> out;
  for (const auto& r : ranges) {
    if (!out.empty() && r.data() < out.back().data() + out.back().size() + 64) {
      const std::byte* end = std::max(out.back().data() + out.back().size(), r.data() + r.size());
      out.back() = {out.back().data(), std::size_t(end - out.back().data())};
    } else if (!r.empty()) {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace

PagedWeights::PagedWeights(std::vector<PagedUnit> units, OffloadPlan plan, bool evict)
    : units_(std::move(units)), plan_(std::move(plan)), evict_(evict), position_(units_.size(), -1), state_(units_.size(), State::out),
      cancelled_(units_.size(), false) {
  if (plan_.resident.size() != units_.size()) throw Error("PagedWeights: the plan is for another model");
  for (std::size_t i = 0; i < units_.size(); ++i) {
    spans_.push_back(merged(units_[i].ranges));
    stats_.disk_bytes += units_[i].bytes();
    if (plan_.resident[i]) {
      for (const auto& r : spans_[i]) populate(r);
      state_[i] = State::in;
    } else if (!units_[i].on_demand) {
      position_[i] = int(streamed_.size());
      streamed_.push_back(int(i));
    }
  }
  stats_.resident_bytes = plan_.resident_bytes;
  stats_.reserve_bytes = plan_.reserve_bytes;
  if (!streamed_.empty()) worker_ = std::thread([this] { worker(); });
}

PagedWeights::~PagedWeights() {
  {
    std::lock_guard lock(m_);
    stop_ = true;
  }
  work_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void PagedWeights::acquire(int unit) {
  const int pos = position_.at(std::size_t(unit));
  if (pos < 0) return;  // resident, or read on demand
  const auto start = std::chrono::steady_clock::now();
  std::unique_lock lock(m_);
  // The window: this unit and the streamed units that follow it, wrapping round to the next pass.
  const int k = int(streamed_.size()), window = std::min(plan_.in_flight, k);
  std::vector<bool> in_window(units_.size(), false);
  for (int j = 0; j < window; ++j) in_window[std::size_t(streamed_[std::size_t((pos + j) % k)])] = true;
  for (int s : streamed_) {
    if (in_window[std::size_t(s)]) {
      cancelled_[std::size_t(s)] = false;
      continue;
    }
    switch (state_[std::size_t(s)]) {  // out of order (a pass that skipped a unit): make room
      case State::in: drop_locked(s); break;
      case State::queued:
        queue_.erase(std::find(queue_.begin(), queue_.end(), s));
        state_[std::size_t(s)] = State::out;
        break;
      case State::loading: cancelled_[std::size_t(s)] = true; break;
      case State::out: break;
    }
  }
  if (state_[std::size_t(unit)] == State::out) {
    queue_.push_front(unit);
    state_[std::size_t(unit)] = State::queued;
  }
  for (int j = 1; j < window; ++j) {
    const int s = streamed_[std::size_t((pos + j) % k)];
    if (state_[std::size_t(s)] == State::out) {
      queue_.push_back(s);
      state_[std::size_t(s)] = State::queued;
    }
  }
  work_.notify_one();
  done_.wait(lock, [&] { return state_[std::size_t(unit)] == State::in; });
  stats_.stall_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void PagedWeights::release(int unit) {
  const auto& u = units_.at(std::size_t(unit));
  if (plan_.resident[std::size_t(unit)]) return;
  const auto start = std::chrono::steady_clock::now();
  std::lock_guard lock(m_);
  if (u.on_demand) {
    for (const auto& r : spans_[std::size_t(unit)]) drop(r, false);  // a few rows: not worth reading again
  } else if (state_[std::size_t(unit)] == State::in) {
    drop_locked(unit);
  }
  stats_.stall_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void PagedWeights::drop_locked(int unit) {
  for (const auto& r : spans_[std::size_t(unit)]) drop(r, evict_);
  state_[std::size_t(unit)] = State::out;
}

OffloadStats PagedWeights::stats() const {
  std::lock_guard lock(m_);
  return stats_;
}

void PagedWeights::worker() {
  std::unique_lock lock(m_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const int u = queue_.front();
    queue_.pop_front();
    state_[std::size_t(u)] = State::loading;
    lock.unlock();
    for (const auto& r : spans_[std::size_t(u)]) populate(r);
    lock.lock();
    if (cancelled_[std::size_t(u)]) {
      cancelled_[std::size_t(u)] = false;
      drop_locked(u);
    } else {
      state_[std::size_t(u)] = State::in;
      stats_.streamed_bytes += units_[std::size_t(u)].bytes();
      ++stats_.units_streamed;
    }
    done_.notify_all();
  }
}

}  // namespace banyan
