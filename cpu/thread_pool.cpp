#include "cpu/thread_pool.hpp"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace banyan::cpu {

namespace {
thread_local bool inside_job = false;

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// ThreadPool::claims_: job number, chunk count, next unclaimed chunk.
std::uint64_t claim_word(std::uint32_t job, std::uint64_t chunks, std::uint64_t next) {
  return std::uint64_t(job) << 32 | chunks << 16 | next;
}
}  // namespace

ThreadPool::ThreadPool(int threads, int spin_us) : spin_ns_(std::int64_t(std::max(spin_us, 0)) * 1000) {
  for (int i = 1; i < std::max(threads, 1); ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// Spins up to spin_ns_ for `ready`, then sleeps on `cv` until it holds. Whoever makes `ready`
// true notifies `cv` while holding m_, so a sleeper cannot miss it.
bool ThreadPool::wait_for(const std::function<bool()>& ready, std::condition_variable& cv) {
  if (spin_ns_ > 0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns_);
    for (int i = 0;; ++i) {
      if (ready()) return true;
      cpu_relax();
      // Yielding now and then lets a thread that shares this core (the one we wait for, when
      // the machine is busy) run instead of watching us spin.
      if ((i & 15) == 15) {
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() > until) break;
      }
    }
  }
  std::unique_lock lock(m_);
  cv.wait(lock, ready);
  return true;
}

void ThreadPool::run_chunks(std::uint32_t job) {
  inside_job = true;
  std::uint64_t c = claims_.load(std::memory_order_acquire);
  for (;;) {
    const std::uint64_t chunks = (c >> 16) & 0xffff, next = c & 0xffff;
    if (std::uint32_t(c >> 32) != job || next >= chunks) break;
    if (!claims_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // Claimed: the job cannot end before this chunk is done, so its fields hold still.
    const std::int64_t begin = std::int64_t(next) * chunk_;
    (*fn_)(begin, std::min(n_, begin + chunk_));
    if (chunks_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == std::int64_t(chunks)) {
      std::lock_guard lock(m_);
      done_.notify_one();
    }
    c = claims_.load(std::memory_order_acquire);
  }
  inside_job = false;
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  for (;;) {
    wait_for([&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; }, wake_);
    if (stop_) return;
    seen = generation_.load(std::memory_order_acquire);
    run_chunks(std::uint32_t(seen));
  }
}

void ThreadPool::parallel_for(std::int64_t n, std::int64_t grain,
                              const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  const std::int64_t max_chunks = (n + grain - 1) / grain;
  if (inside_job || workers_.empty() || max_chunks == 1) {
    fn(0, n);
    return;
  }
  std::lock_guard run(run_mutex_);
  // A few chunks per thread balance uneven work without much contention (and fit claims_).
  const std::int64_t target = std::min<std::int64_t>({max_chunks, 4 * size(), 0xffff});
  const std::int64_t chunk = (n + target - 1) / target, chunks = (n + chunk - 1) / chunk;
  fn_ = &fn;
  n_ = n;
  chunk_ = chunk;
  chunks_done_.store(0, std::memory_order_relaxed);
  std::uint32_t job = 0;
  {
    std::lock_guard lock(m_);
    job = std::uint32_t(generation_.load(std::memory_order_relaxed) + 1);
    claims_.store(claim_word(job, std::uint64_t(chunks), 0), std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_chunks(job);
  wait_for([&] { return chunks_done_.load(std::memory_order_acquire) == chunks; }, done_);
  fn_ = nullptr;
}

}  // namespace banyan::cpu
