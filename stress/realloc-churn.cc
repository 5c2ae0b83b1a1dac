// realloc-churn: random grow/shrink realloc chains with content checks.
//
//   realloc-churn [ITERATIONS] [--threads N] [--chains N]
//
// A shared table of chains; each chain is one heap block whose byte i always equals
// pattern(key, i). Threads pick random chains (cross-thread: a block is often reallocated by a
// thread other than the one that allocated it) and resize them: small steps of a few bytes
// (in-place paths), growth or shrink by a factor, or a jump to an unrelated size from 1 byte to
// 4 MiB (moves between size classes and to/from large allocations). After every realloc the
// surviving prefix min(old, new) must be unchanged; the new tail is then filled. Now and then the
// slack up to malloc_usable_size() is scribbled on (it must be ours to write), and chains are
// freed and restarted with realloc(NULL, n).
#include <malloc.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "workload.h"

namespace {

struct Options {
  uint64_t iterations = 2'000'000;
  uint64_t threads = 4;
  uint64_t chains = 256;
  uint64_t seed = stress::default_seed();
  uint64_t timeout = 0;
  bool quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("realloc-churn",
                  "Threads grow and shrink realloc chains of random sizes (1 B .. 4 MiB) and check "
                  "that the surviving prefix is intact after every realloc.");
  cli.positional("ITERATIONS", "total reallocs over all threads", o.iterations, 1,
                 1'000'000'000'000, false);
  cli.number("threads", "worker threads", o.threads, 1, 1024);
  cli.number("chains", "chains (blocks) shared by the threads", o.chains, 1, 1u << 24);
  cli.number("seed", "random seed", o.seed, 0, UINT64_MAX, "from the clock; printed");
  cli.number("timeout", "fail if not done after N seconds (0 = no limit)", o.timeout, 0, 1u << 30);
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.parse(argc, argv);
  return o;
}

constexpr size_t kMaxSize = 4u << 20;

// Byte i of a chain always holds byte i of the chain key's pattern (harness/pattern.h): different
// for every word of a chain and between chains, so a lost or misplaced piece of a copy shows.
using harness::fill_pattern;
using harness::find_pattern_mismatch;
using harness::pattern_byte;

struct alignas(64) Chain {
  std::mutex m;
  uint8_t* p = nullptr;
  size_t n = 0;
  uint64_t key = 0;
};

[[noreturn]] void report(const Chain& c, size_t chain_no, const char* what, size_t old_n,
                         size_t off) {
  stress::fail(
      "chain %zu: %s: block %p (size %zu, was %zu): byte at offset %zu is 0x%02x, "
      "expected 0x%02x",
      chain_no, what, static_cast<void*>(c.p), c.n, old_n, off, c.p[off], pattern_byte(c.key, off));
}

// Checks the first `len` bytes: all of them up to 64 KiB, otherwise the first and last 16 KiB
// and one word in every 2 KiB between (a lost or misplaced page is still caught).
void check_prefix(const Chain& c, size_t chain_no, size_t len, size_t old_n, const char* what) {
  constexpr size_t kDense = 64 << 10, kEdge = 16 << 10;
  auto check = [&](size_t from, size_t to) {
    size_t bad = find_pattern_mismatch(c.p, from, to, c.key);
    if (bad != to) report(c, chain_no, what, old_n, bad);
  };
  if (len <= kDense) {
    check(0, len);
    return;
  }
  size_t tail = (len - kEdge) & ~size_t{7};
  check(0, kEdge);
  check(tail, len);
  for (size_t off = kEdge; off + 8 <= tail; off += 2048) check(off, off + 8);
}

size_t fresh_size(stress::Rng& rng) {
  uint64_t r = rng.below(100);
  if (r < 60) return rng.between(1, 1024);
  if (r < 90) return rng.between(1025, 64 << 10);
  if (r < 99) return rng.between((64 << 10) + 1, 512 << 10);
  return rng.between((512 << 10) + 1, kMaxSize);
}

// The next size of a chain currently n bytes long.
size_t next_size(stress::Rng& rng, size_t n) {
  uint64_t r = rng.below(100);
  size_t m;
  if (r < 35) {  // a small step: often stays in the same size class or page run
    size_t delta = rng.between(1, 64);
    m = rng.one_in(2) ? n + delta : (n > delta ? n - delta : 1);
  } else if (r < 60) {  // grow by 25..100% or shrink to 50..80%
    m = rng.one_in(2) ? n + n * rng.between(25, 100) / 100 : n * rng.between(50, 80) / 100;
  } else {
    m = fresh_size(rng);
  }
  return std::clamp<size_t>(m, 1, kMaxSize);
}

struct Stats {
  uint64_t reallocs = 0, moves = 0, restarts = 0, busy = 0;
  void add(const Stats& o) {
    reallocs += o.reallocs;
    moves += o.moves;
    restarts += o.restarts;
    busy += o.busy;
  }
};

class Table {
 public:
  explicit Table(size_t chains) : chains_(chains) {}

  // One step on chain i (already locked by the caller).
  void step(size_t i, stress::Rng& rng, Stats& st) {
    Chain& c = chains_[i];
    if (c.p == nullptr) {
      start(c, rng);
      return;
    }
    if (rng.one_in(64)) {  // retire the chain; it restarts on its next visit
      check_prefix(c, i, c.n, c.n, "before free");
      std::free(c.p);
      c.p = nullptr;
      ++st.restarts;
      return;
    }
    size_t old_n = c.n, m = next_size(rng, c.n);
    auto* q = static_cast<uint8_t*>(std::realloc(c.p, m));
    if (q == nullptr) stress::fail("chain %zu: realloc(%p, %zu) returned NULL", i, c.p, m);
    if (q != c.p) ++st.moves;
    c.p = q;
    c.n = m;
    check_prefix(c, i, std::min(old_n, m), old_n, "after realloc");
    if (m > old_n) fill_pattern(c.p, old_n, m, c.key);
    check_usable(c, i, rng);
    ++st.reallocs;
  }

  std::mutex& lock_of(size_t i) { return chains_[i].m; }
  size_t size() const { return chains_.size(); }

  // Checks and frees every chain (single-threaded, at the end).
  void drain() {
    for (size_t i = 0; i < chains_.size(); ++i) {
      Chain& c = chains_[i];
      if (c.p == nullptr) continue;
      check_prefix(c, i, c.n, c.n, "final free");
      std::free(c.p);
      c.p = nullptr;
    }
  }

 private:
  static void start(Chain& c, stress::Rng& rng) {
    c.key = rng.next();
    c.n = fresh_size(rng);
    c.p = static_cast<uint8_t*>(std::realloc(nullptr, c.n));
    if (c.p == nullptr) stress::fail("realloc(NULL, %zu) returned NULL", c.n);
    fill_pattern(c.p, 0, c.n, c.key);
  }

  // malloc_usable_size must cover the request, and the slack must be writable without harm.
  static void check_usable(Chain& c, size_t i, stress::Rng& rng) {
    size_t usable = malloc_usable_size(c.p);
    if (usable < c.n)
      stress::fail("chain %zu: malloc_usable_size(%p) = %zu < requested %zu", i,
                   static_cast<void*>(c.p), usable, c.n);
    if (usable > c.n && rng.one_in(16)) std::memset(c.p + c.n, 0xee, usable - c.n);
  }

  std::vector<Chain> chains_;
};

void worker(Table& table, stress::Budget& budget, uint64_t seed, Stats& out) {
  stress::Rng rng(seed);
  Stats st;
  while (uint64_t batch = budget.claim(64)) {
    for (uint64_t k = 0; k < batch; ++k) {
      size_t i = rng.below(table.size());
      std::unique_lock<std::mutex> lock(table.lock_of(i), std::try_to_lock);
      if (!lock.owns_lock()) {
        ++st.busy;
        continue;
      }
      table.step(i, rng, st);
    }
  }
  out = st;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  stress::arm_watchdog(static_cast<unsigned>(o.timeout), "realloc-churn did not finish in time");
  std::printf("realloc-churn: %" PRIu64 " iterations, %" PRIu64 " threads, %" PRIu64
              " chains, seed %" PRIu64 "\n",
              o.iterations, o.threads, o.chains, o.seed);
  std::fflush(stdout);

  Table table(o.chains);
  stress::Budget budget(o.iterations);
  std::vector<Stats> stats(o.threads);
  std::vector<std::thread> threads;
  auto start = stress::Clock::now();
  for (uint64_t t = 0; t < o.threads; ++t)
    threads.emplace_back(worker, std::ref(table), std::ref(budget), stress::mix64(o.seed + t),
                         std::ref(stats[t]));

  stress::ProgressTicker ticker(o.iterations);
  while (budget.remaining() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t left = budget.remaining();
    double now = stress::seconds_since(start);
    if (o.quiet || !ticker.due(left, now)) continue;
    std::printf("- iterations left: %" PRIu64 ", %.2f s\n", left, now);
    std::fflush(stdout);
  }
  for (std::thread& t : threads) t.join();
  table.drain();

  Stats total;
  for (const Stats& s : stats) total.add(s);
  double secs = stress::seconds_since(start);
  std::printf("realloc-churn: OK: %" PRIu64 " reallocs (%" PRIu64 " moved the block), %" PRIu64
              " chain restarts, %" PRIu64 " busy skips, %.2f s, %.0f reallocs/sec\n",
              total.reallocs, total.moves, total.restarts, total.busy, secs,
              secs > 0 ? static_cast<double>(total.reallocs) / secs : 0.0);
  return 0;
}
