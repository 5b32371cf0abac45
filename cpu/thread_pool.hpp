#pragma once
// A fork-join pool for the CPU kernels: persistent workers that sleep between jobs (no
// spinning that would starve the actors sharing a small machine); the caller works too.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace banyan::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads in all, the calling thread included; >= 1
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
  void work_on_current_job();

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  int busy_workers_ = 0;

  // The current job, valid while busy_workers_ > 0 or the caller runs it.
  const std::function<void(std::int64_t, std::int64_t)>* fn_ = nullptr;
  std::int64_t n_ = 0, chunk_ = 0, chunks_ = 0;
  std::int64_t next_chunk_ = 0;  // guarded by m_
};

}  // namespace banyan::cpu
