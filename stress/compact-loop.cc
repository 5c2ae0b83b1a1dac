// compact-loop: compaction running in a loop while threads allocate, write and read.
//
//   compact-loop [SECONDS] [--threads N] [--writers N] [--counters N] [--survivors N]
//
// A compactor thread calls libmesh's mesh_compact() in a loop (found with dlsym, so the program
// also runs under other allocators, where it calls malloc_trim(0) instead). Meanwhile:
//   - churn threads run the test-stress workload (stamped blocks, cross-thread frees);
//   - writer threads each own --counters small heap objects of assorted sizes and increment the
//     counter inside a random one again and again; before every increment the counter must equal
//     the writer's own tally, so an increment lost while a page was being moved is caught at
//     once; now and then a counter object is moved to a fresh allocation;
//   - a verifier thread keeps re-checking --survivors long-lived objects, left scattered over
//     mostly empty pages at start-up (allocate many, free three quarters) so that there is
//     plenty to mesh.
#include <thread>

#include "workload.h"

namespace {

struct Options {
  uint64_t seconds = 5;
  uint64_t threads = 2;
  uint64_t writers = 2;
  uint64_t counters = 4096;
  uint64_t survivors = 50000;
  uint64_t interval_us = 1000;
  uint64_t seed = stress::default_seed();
  uint64_t timeout = 0;
  bool quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("compact-loop",
                  "One thread compacts in a loop (mesh_compact, else malloc_trim) while others "
                  "allocate, increment counters in heap objects and verify contents.");
  cli.positional("SECONDS", "run time in seconds", o.seconds, 1, 1u << 20, false);
  cli.number("threads", "churn threads (test-stress workload)", o.threads, 0, 1024);
  cli.number("writers", "counter-writer threads", o.writers, 1, 1024);
  cli.number("counters", "counter objects per writer", o.counters, 1, 1u << 22);
  cli.number("survivors", "long-lived scattered objects re-checked by the verifier", o.survivors, 1,
             1u << 24);
  cli.number("interval-us", "pause between two compactions", o.interval_us, 0, 1u << 30);
  cli.number("seed", "random seed", o.seed, 0, UINT64_MAX, "from the clock; printed");
  cli.number("timeout", "watchdog in seconds", o.timeout, 0, 1u << 30, "SECONDS + 60");
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.parse(argc, argv);
  if (o.timeout == 0) o.timeout = o.seconds + 60;
  return o;
}

// --- counters --------------------------------------------------------------------------------

// A counter object of n >= 24 bytes: [0, 8) tag, [8, 16) count, [n-8, n) ~tag.
struct Counter {
  uint8_t* p = nullptr;
  size_t n = 0;
  uint64_t tally = 0;  // increments made by the owning writer
};

uint64_t* count_of(const Counter& c) {
  return reinterpret_cast<uint64_t*>(c.p + 8);
}

Counter new_counter(stress::Rng& rng, uint64_t seed, uint64_t count) {
  Counter c;
  c.n = rng.between(3, 32) * 8;  // 24..256 bytes: several size classes
  c.p = static_cast<uint8_t*>(stress::xmalloc(c.n, "counter"));
  uint64_t tag = stress::stamp_tag(c.p, c.n, seed), inv = ~tag;
  std::memcpy(c.p, &tag, 8);
  std::memcpy(c.p + c.n - 8, &inv, 8);
  *count_of(c) = count;
  c.tally = count;
  return c;
}

void check_counter(const Counter& c, uint64_t seed) {
  uint64_t tag = stress::stamp_tag(c.p, c.n, seed), head, tail;
  std::memcpy(&head, c.p, 8);
  std::memcpy(&tail, c.p + c.n - 8, 8);
  if (head != tag) stress::report_corruption(c.p, c.n, "header word", 0, tag, head, "counter");
  if (tail != ~tag)
    stress::report_corruption(c.p, c.n, "trailer word", c.n - 8, ~tag, tail, "counter");
  uint64_t count = *count_of(c);
  if (count != c.tally)
    stress::fail("counter object %p (size %zu): count is %" PRIu64 ", expected %" PRIu64 ": %s",
                 static_cast<void*>(c.p), c.n, count, c.tally,
                 count < c.tally ? "increments were lost" : "counter changed behind our back");
}

// A writer: increments random counters, checking each one first; sometimes moves one.
uint64_t run_writer(const Options& o, const stress::Budget& budget, uint64_t thread_seed) {
  stress::Rng rng(thread_seed);
  uint64_t seed = o.seed ^ 0xc0;
  std::vector<Counter> counters(o.counters);
  for (Counter& c : counters) c = new_counter(rng, seed, rng.below(1000));
  uint64_t increments = 0;
  while (!budget.stopped()) {
    for (int k = 0; k < 1024; ++k) {
      Counter& c = counters[rng.below(counters.size())];
      volatile uint64_t* count = count_of(c);
      uint64_t seen = *count;
      if (seen != c.tally) check_counter(c, seed);  // fails with the details
      *count = seen + 1;
      ++c.tally;
      ++increments;
      if (rng.one_in(256)) {  // move the counter to a new object
        check_counter(c, seed);
        Counter moved = new_counter(rng, seed, c.tally);
        std::free(c.p);
        c = moved;
      }
    }
  }
  for (Counter& c : counters) {
    check_counter(c, seed);
    std::free(c.p);
  }
  return increments;
}

// --- survivors -------------------------------------------------------------------------------

// Allocates `count * 4` small objects and frees three quarters of them at random, leaving
// `count` stamped survivors spread thinly over many pages.
std::vector<stress::Block> scatter_survivors(uint64_t count, uint64_t seed) {
  stress::Rng rng(seed);
  std::vector<stress::Block> all(count * 4);
  for (stress::Block& b : all) {
    b.n = rng.between(16, 512);
    b.p = stress::xmalloc(b.n, "survivor");
    stress::stamp(b.p, b.n, seed);
  }
  std::vector<stress::Block> kept;
  kept.reserve(count);
  for (stress::Block& b : all) {
    if (kept.size() < count && rng.one_in(4))
      kept.push_back(b);
    else
      stress::release_block(b, seed, "scattered object freed at start-up");
  }
  return kept;
}

uint64_t run_verifier(const std::vector<stress::Block>& survivors, const stress::Budget& budget,
                      uint64_t seed) {
  uint64_t passes = 0;
  while (!budget.stopped()) {
    for (const stress::Block& b : survivors)
      stress::verify(b.p, b.n, seed, "survivor (re-checked during compaction)");
    ++passes;
  }
  return passes;
}

// --- compactor -------------------------------------------------------------------------------

struct CompactorStats {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> meshes{0};
};

void run_compactor(stress::CompactFn mesh_compact, const stress::Budget& budget,
                   uint64_t interval_us, CompactorStats& st) {
  while (!budget.stopped()) {
    st.meshes.fetch_add(stress::compact_now(mesh_compact), std::memory_order_relaxed);
    st.calls.fetch_add(1, std::memory_order_relaxed);
    if (interval_us != 0) std::this_thread::sleep_for(std::chrono::microseconds(interval_us));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  stress::arm_watchdog(static_cast<unsigned>(o.timeout), "compact-loop did not finish in time");
  stress::CompactFn mesh_compact = stress::find_mesh_compact();
  std::printf("compact-loop: %" PRIu64 " s, %" PRIu64 " churn threads, %" PRIu64
              " writers x %" PRIu64 " counters, %" PRIu64
              " survivors, compaction by %s, "
              "seed %" PRIu64 "\n",
              o.seconds, o.threads, o.writers, o.counters, o.survivors,
              mesh_compact ? "mesh_compact()" : "malloc_trim(0)", o.seed);
  std::fflush(stdout);

  uint64_t survivor_seed = o.seed ^ 0x5u;
  std::vector<stress::Block> survivors = scatter_survivors(o.survivors, survivor_seed);

  stress::ChurnConfig cfg;
  cfg.working_set = 500;
  cfg.seed = o.seed;
  stress::Exchange exchange(256);
  stress::Budget budget(0);  // until stop()
  CompactorStats compactor;
  std::atomic<uint64_t> increments{0};
  uint64_t verifier_passes = 0;

  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < o.threads; ++t)
    threads.emplace_back(
        [&, t] { stress::churn(cfg, exchange, budget, stress::mix64(o.seed + t)); });
  for (uint64_t t = 0; t < o.writers; ++t)
    threads.emplace_back(
        [&, t] { increments += run_writer(o, budget, stress::mix64(o.seed ^ (t + 77))); });
  threads.emplace_back([&] { verifier_passes = run_verifier(survivors, budget, survivor_seed); });
  threads.emplace_back([&] { run_compactor(mesh_compact, budget, o.interval_us, compactor); });

  auto start = stress::Clock::now();
  for (uint64_t s = 1; s <= o.seconds; ++s) {
    std::this_thread::sleep_until(start + std::chrono::seconds(s));
    if (!o.quiet) {
      std::printf("- %" PRIu64 " s: %" PRIu64 " compactions, %" PRIu64 " meshes, rss %.1f MiB\n", s,
                  compactor.calls.load(), compactor.meshes.load(),
                  stress::rss_bytes() / stress::kMiB);
      std::fflush(stdout);
    }
  }
  budget.stop();
  for (std::thread& t : threads) t.join();

  exchange.drain(o.seed);
  for (stress::Block& b : survivors) stress::release_block(b, survivor_seed, "survivor final free");
  if (compactor.calls.load() == 0) stress::fail("the compactor never ran");
  std::printf("compact-loop: OK: %" PRIu64 " compactions (%" PRIu64 " meshes), %" PRIu64
              " counter increments all present, %" PRIu64 " verifier passes, %.2f s\n",
              compactor.calls.load(), compactor.meshes.load(), increments.load(), verifier_passes,
              stress::seconds_since(start));
  return 0;
}
