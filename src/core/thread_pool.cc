// ThreadPool implementation: one job at a time, ranges precomputed by the caller; hand-offs spin
// for a bounded time (kSpinTime) before falling back to condition variables.
#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define GE_CPU_RELAX() _mm_pause()
#else
#define GE_CPU_RELAX() std::this_thread::yield()
#endif

namespace ge {
namespace {

// Long enough to bridge the gap between two ops of a decode step (a few to tens of µs), short
// enough that an idle pool stops burning its cores almost at once.
constexpr auto kSpinTime = std::chrono::microseconds(200);

// Spins until pred() holds or kSpinTime has passed; returns pred(). After the first ~1k pauses it
// yields between checks, so on an oversubscribed machine the thread being waited for gets the core.
template <typename Pred>
bool spin_until(const Pred& pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 1;; ++i) {
    if (pred()) return true;
    if (i < 1024) {
      GE_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
    if ((i & 63) == 0 && std::chrono::steady_clock::now() >= deadline) return pred();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  ranges_.assign(static_cast<size_t>(n_threads_), {0, 0});
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t n_grains = (n + grain - 1) / grain;
  int64_t parts = std::min<int64_t>(n_threads_, n_grains);
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  // Workers of the previous job are done with ranges_ (pending_ reached 0 after they read it).
  for (int64_t p = 0; p < n_threads_; ++p) {
    if (p >= parts) {
      ranges_[static_cast<size_t>(p)] = {0, 0};
      continue;
    }
    int64_t b = (n_grains * p / parts) * grain;
    int64_t e = std::min(n, (n_grains * (p + 1) / parts) * grain);
    ranges_[static_cast<size_t>(p)] = {b, e};
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1);
  generation_.fetch_add(1);  // publishes job_ and ranges_
  if (sleeping_workers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_start_.notify_all();
  }
  fn(ranges_[0].first, ranges_[0].second);
  if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mu_);
    caller_sleeping_.store(true);
    cv_done_.wait(lock, [this] { return pending_.load() == 0; });
    caller_sleeping_.store(false);
  }
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto started = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(started)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleeping_workers_.fetch_add(1);
      cv_start_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      sleeping_workers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    const std::function<void(int64_t, int64_t)>* job = job_;
    const std::pair<int64_t, int64_t> range = ranges_[static_cast<size_t>(index)];
    if (range.second > range.first) (*job)(range.first, range.second);
    if (pending_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

}  // namespace ge
