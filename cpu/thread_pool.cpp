#include "cpu/thread_pool.hpp"

#include <algorithm>

namespace banyan::cpu {

namespace {
thread_local bool inside_job = false;
}

ThreadPool::ThreadPool(int threads) {
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

void ThreadPool::work_on_current_job() {
  inside_job = true;
  for (;;) {
    std::int64_t c;
    {
      std::lock_guard lock(m_);
      if (next_chunk_ >= chunks_) break;
      c = next_chunk_++;
    }
    const std::int64_t begin = c * chunk_;
    (*fn_)(begin, std::min(n_, begin + chunk_));
  }
  inside_job = false;
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(m_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    work_on_current_job();
    {
      std::lock_guard lock(m_);
      if (--busy_workers_ == 0) done_.notify_one();
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
  // A few chunks per thread balance uneven work without much locking.
  const std::int64_t chunks = std::min<std::int64_t>(max_chunks, 4 * size());
  {
    std::lock_guard lock(m_);
    fn_ = &fn;
    n_ = n;
    chunk_ = (n + chunks - 1) / chunks;
    chunks_ = (n + chunk_ - 1) / chunk_;
    next_chunk_ = 0;
    busy_workers_ = int(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  work_on_current_job();
  std::unique_lock lock(m_);
  done_.wait(lock, [&] { return busy_workers_ == 0; });
  fn_ = nullptr;
}

}  // namespace banyan::cpu
