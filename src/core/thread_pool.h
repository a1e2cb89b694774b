// A fixed pool of worker threads running one parallel-for at a time (the calling thread joins in).
// Used by CPU matmuls and attention: work is split into contiguous ranges, no work stealing.
// Workers and the caller spin briefly before sleeping: decode issues hundreds of short
// parallel-fors per token, and a condition-variable wake-up per hand-off costs tens of µs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ge {

class ThreadPool {
 public:
  // n_threads counts the caller: 1 means no worker threads.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) over a partition of [0, n) into at most size() contiguous chunks,
  // each a multiple of `grain` long (except the last). Returns when all chunks are done.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_;
  std::condition_variable cv_done_;
  // Written by the caller before generation_ is advanced (release), read by workers after they
  // see the new generation (acquire); stable until pending_ reaches 0.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> ranges_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  // Sleepers announce themselves before re-checking their condition under mu_, so a notifier that
  // sees no sleeper knows the sleeper will see its update (both sides sequentially consistent).
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace ge
