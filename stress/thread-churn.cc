// thread-churn: thousands of short-lived threads that exit with live objects; RSS must stay flat.
//
//   thread-churn [THREADS] [--concurrent N] [--objects N] [--max-growth-mb N]
//
// Threads are started in waves of --concurrent. Each one first frees (after checking them) as
// many objects as it will allocate from a shared "orphan" pool, i.e. objects left behind by
// threads that have already exited, then allocates --objects new ones, puts them in the pool and
// exits with them still live. The pool size therefore stays constant, and so must the memory:
// after a warm-up (the first 10% of the threads) the resident set may not grow by more than
// --max-growth-mb plus half the warm-up peak. A leak of per-thread allocator state (caches,
// heaps, spans owned by dead threads) shows up as a steady climb.
#include <algorithm>
#include <mutex>
#include <thread>

#include "workload.h"

namespace {

struct Options {
  uint64_t threads = 4000;
  uint64_t concurrent = 16;
  uint64_t objects = 200;
  uint64_t max_growth_mb = 64;
  uint64_t seed = stress::default_seed();
  uint64_t timeout = 600;
  bool quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("thread-churn",
                  "Short-lived threads allocate objects and exit leaving them live; later threads "
                  "free them. Fails if the resident set keeps growing.");
  cli.positional("THREADS", "total threads to run", o.threads, 10, 1u << 24, false);
  cli.number("concurrent", "threads alive at the same time (one wave)", o.concurrent, 1, 1024);
  cli.number("objects", "objects each thread leaves behind", o.objects, 1, 1u << 20);
  cli.number("max-growth-mb", "allowed RSS growth over the warm-up peak, besides 50%",
             o.max_growth_mb, 0, 1u << 20);
  cli.number("seed", "random seed", o.seed, 0, UINT64_MAX, "from the clock; printed");
  cli.number("timeout", "fail if not done after N seconds (0 = no limit)", o.timeout, 0, 1u << 30);
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.parse(argc, argv);
  return o;
}

// Objects whose allocating thread has exited, waiting to be freed by another thread.
class OrphanPool {
 public:
  void put(std::vector<stress::Block>& blocks) {
    std::lock_guard<std::mutex> guard(mu_);
    for (stress::Block& b : blocks) pool_.push_back(b);
  }

  // Moves up to n objects out of the pool into `out` (taken from random places so that objects
  // of many dead threads are mixed).
  void take(size_t n, stress::Rng& rng, std::vector<stress::Block>& out) {
    std::lock_guard<std::mutex> guard(mu_);
    for (size_t i = 0; i < n && !pool_.empty(); ++i) {
      size_t k = rng.below(pool_.size());
      out.push_back(pool_[k]);
      pool_[k] = pool_.back();
      pool_.pop_back();
    }
  }

  size_t drain(uint64_t seed) {
    size_t n = pool_.size();
    for (stress::Block& b : pool_) stress::release_block(b, seed, "final free of an orphan");
    pool_.clear();
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<stress::Block> pool_;
};

// Body of one short-lived thread.
void short_lived(OrphanPool& pool, uint64_t objects, uint64_t stamp_seed, uint64_t thread_seed) {
  stress::Rng rng(thread_seed);
  std::vector<stress::Block> blocks;
  blocks.reserve(objects);
  pool.take(objects, rng, blocks);
  for (stress::Block& b : blocks) stress::release_block(b, stamp_seed, "free of an orphan");
  blocks.clear();
  for (uint64_t i = 0; i < objects; ++i) {
    // Mostly small objects, sometimes a page or more.
    size_t n = rng.one_in(20) ? rng.between(1025, 32768) : rng.between(8, 1024);
    blocks.push_back(stress::make_block(rng, n, stamp_seed));
  }
  pool.put(blocks);
}

// Tracks the resident set: the peak during warm-up, then the limit it must stay under.
class RssGuard {
 public:
  RssGuard(uint64_t warmup_threads, uint64_t max_growth_mb)
      : warmup_threads_(warmup_threads), max_growth_(max_growth_mb << 20) {}

  // Called after each wave with the number of threads finished so far.
  void sample(uint64_t threads_done) {
    uint64_t rss = stress::rss_bytes();
    peak_ = std::max(peak_, rss);
    if (threads_done <= warmup_threads_) {
      baseline_ = std::max(baseline_, rss);
      return;
    }
    if (rss > limit()) {
      stress::fail("RSS grew from %.1f MiB (warm-up peak) to %.1f MiB after %" PRIu64
                   " threads (limit %.1f MiB): memory of exited threads is not reused",
                   baseline_ / stress::kMiB, rss / stress::kMiB, threads_done,
                   limit() / stress::kMiB);
    }
  }

  uint64_t limit() const { return baseline_ + baseline_ / 2 + max_growth_; }
  uint64_t baseline() const { return baseline_; }
  uint64_t peak() const { return peak_; }

 private:
  uint64_t warmup_threads_;
  uint64_t max_growth_;
  uint64_t baseline_ = 0;
  uint64_t peak_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  stress::arm_watchdog(static_cast<unsigned>(o.timeout), "thread-churn did not finish in time");
  std::printf("thread-churn: %" PRIu64 " threads, %" PRIu64 " at a time, %" PRIu64
              " objects each, seed %" PRIu64 "\n",
              o.threads, o.concurrent, o.objects, o.seed);
  std::fflush(stdout);

  OrphanPool pool;
  RssGuard rss(std::max<uint64_t>(o.threads / 10, o.concurrent), o.max_growth_mb);
  auto start = stress::Clock::now();
  uint64_t started = 0, next_report = o.threads / 10;
  while (started < o.threads) {
    uint64_t wave = std::min(o.concurrent, o.threads - started);
    std::vector<std::thread> threads;
    for (uint64_t i = 0; i < wave; ++i, ++started) {
      uint64_t thread_seed = stress::mix64(o.seed + started);
      threads.emplace_back(short_lived, std::ref(pool), o.objects, o.seed, thread_seed);
    }
    for (std::thread& t : threads) t.join();
    rss.sample(started);
    if (!o.quiet && started >= next_report) {
      std::printf("- threads done: %" PRIu64 "/%" PRIu64
                  ", rss %.1f MiB (warm-up peak %.1f MiB), "
                  "%.2f s\n",
                  started, o.threads, stress::rss_bytes() / stress::kMiB,
                  rss.baseline() / stress::kMiB, stress::seconds_since(start));
      std::fflush(stdout);
      next_report += std::max<uint64_t>(1, o.threads / 10);
    }
  }
  size_t left = pool.drain(o.seed);
  std::printf("thread-churn: OK: %" PRIu64
              " threads in %.2f s, %zu objects freed at the end, "
              "peak RSS %.1f MiB (warm-up peak %.1f MiB, limit %.1f MiB)\n",
              o.threads, stress::seconds_since(start), left, rss.peak() / stress::kMiB,
              rss.baseline() / stress::kMiB, rss.limit() / stress::kMiB);
  return 0;
}
