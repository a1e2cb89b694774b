// Memory read bandwidth, STREAM-style: each thread sums its own slice of a buffer far larger than
// the last-level cache. Integer sums vectorize without reassociation flags, so the loads, not the
// adds, limit it (build with -O3 -march=native).
// Prints "threads N: X.X GB/s" (median of repetitions). Used by scripts/bench_cpu.sh.
//   membw [--threads 1,2] [--mib 1024] [--reps 5]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

uint64_t read_sum(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

double bandwidth(const std::vector<uint64_t>& buf, int threads, int reps) {
  const size_t n = buf.size();
  std::vector<double> times;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        const size_t b = n / threads * t, e = t + 1 == threads ? n : n / threads * (t + 1);
        sums[static_cast<size_t>(t)] = read_sum(buf.data() + b, e - b);
      });
    }
    for (auto& t : ts) t.join();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    for (uint64_t s : sums) sink = sink + s;
  }
  std::sort(times.begin(), times.end());
  return static_cast<double>(n * sizeof(uint64_t)) / times[times.size() / 2] / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string threads = "1,2";
  long mib = 1024, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = argv[i + 1];
    else if (!std::strcmp(argv[i], "--mib")) mib = std::strtol(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::strtol(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: membw [--threads 1,2] [--mib 1024] [--reps 5]\n");
      return 2;
    }
  }
  if (mib < 1 || mib > (1 << 20) || reps < 1 || reps > 1000) {
    std::fprintf(stderr, "membw: --mib must be 1..1048576 and --reps 1..1000\n");
    return 2;
  }
  std::vector<uint64_t> buf(static_cast<size_t>(mib) << 17, 1);  // MiB / 8 bytes
  size_t pos = 0;
  while (pos <= threads.size()) {
    const size_t comma = std::min(threads.find(',', pos), threads.size());
    const int t = std::atoi(threads.substr(pos, comma - pos).c_str());
    if (t < 1 || t > 1024) {
      std::fprintf(stderr, "membw: bad thread count in '%s'\n", threads.c_str());
      return 2;
    }
    bandwidth(buf, t, 1);  // warm-up (page faults, frequency)
    std::printf("threads %d: %.1f GB/s\n", t, bandwidth(buf, t, static_cast<int>(reps)));
    pos = comma + 1;
  }
  return 0;
}
