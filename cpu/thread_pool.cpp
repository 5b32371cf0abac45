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

void ThreadPool::run_chunks() {
  inside_job = true;
  for (std::int64_t c; (c = next_chunk_.fetch_add(1, std::memory_order_relaxed)) < chunks_;) {
    const std::int64_t begin = c * chunk_;
    (*fn_)(begin, std::min(n_, begin + chunk_));
  }
  inside_job = false;
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  for (;;) {
    wait_for([&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; }, wake_);
    if (stop_) return;
    seen = generation_.load(std::memory_order_acquire);
    run_chunks();
    if (finished_workers_.fetch_add(1, std::memory_order_acq_rel) + 1 == int(workers_.size())) {
      std::lock_guard lock(m_);
      done_.notify_one();
    }
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
  // A few chunks per thread balance uneven work without much contention.
  const std::int64_t chunks = std::min<std::int64_t>(max_chunks, 4 * size());
  fn_ = &fn;
  n_ = n;
  chunk_ = (n + chunks - 1) / chunks;
  chunks_ = (n + chunk_ - 1) / chunk_;
  next_chunk_.store(0, std::memory_order_relaxed);
  finished_workers_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard lock(m_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_chunks();
  wait_for([&] { return finished_workers_.load(std::memory_order_acquire) == int(workers_.size()); }, done_);
  fn_ = nullptr;
}

}  // namespace banyan::cpu
