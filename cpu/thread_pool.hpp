#pragma once
// A fork-join pool for the CPU kernels. Workers persist between jobs. After a job they spin for
// a short, bounded time (jobs arrive microseconds apart while a model runs, and a wake-up
// through the kernel costs more than that), then sleep, so an idle pool leaves the cores to
// whoever else needs them. spin_us = 0 makes them sleep at once.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace banyan::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads, int spin_us = 100);  // threads in all, the caller included
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n), each at least `grain` long (but
  // the last), spread over the threads; returns when all are done. Nested calls run inline.
  void parallel_for(std::int64_t n, std::int64_t grain,
                    const std::function<void(std::int64_t, std::int64_t)>& fn);

 private:
  void worker_loop();
  void run_chunks(std::uint32_t job);
  bool wait_for(const std::function<bool()>& ready, std::condition_variable& cv);

  std::vector<std::thread> workers_;
  const std::int64_t spin_ns_;
  std::mutex run_mutex_;  // one job at a time
  std::mutex m_;          // guards sleeping and waking
  std::condition_variable wake_, done_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};

  // The current job. Its chunks are claimed from `claims_`: the job's number (32 bits), its
  // chunk count (16) and the next unclaimed chunk (16), so that a worker waking late for a job
  // that is over claims nothing of the next one. A job ends when its chunks are done, whoever
  // did them: a worker the OS has not scheduled yet does not hold the caller up.
  const std::function<void(std::int64_t, std::int64_t)>* fn_ = nullptr;
  std::int64_t n_ = 0, chunk_ = 0;
  std::atomic<std::uint64_t> claims_{0};
  std::atomic<std::int64_t> chunks_done_{0};
};

}  // namespace banyan::cpu
