// rptest-like: threads allocating in bursts, freeing out of order, passing some blocks on, and
// being replaced by new threads (the pattern of rpmalloc's rptest).
//
// Pattern: --threads threads run cycles. A cycle first frees what other threads passed to this
// thread's inbox (remote frees), then mallocs a burst of --burst blocks (octaves from 16 B to
// 16 KiB equally likely, one block in 256 of 64-256 KiB), then frees them in a random order,
// except --cross-pct percent that go to the next thread's inbox. After --thread-cycles cycles the
// threads exit and new ones take their place (their inboxes carry over), so per-thread caches are
// set up and torn down during the run, as in a server with a thread pool that is resized.
//
// Checked: every block holds its stamp when it is freed, and every block is freed exactly once
// (a count); else exit 1.
//
// Output (stdout, key=value): seconds, checksum, threads, cycles, blocks, passed (blocks freed by
// another thread), generations, then the process's counters (classic_common.h).
#include <mutex>

#include "classic_common.h"

namespace {

constexpr const char* kProgram = "rptest-like";

struct Config {
  uint64_t threads = 2;
  uint64_t cycles = 20000;
  uint64_t burst = 256;
  uint64_t cross_pct = 10;
  uint64_t thread_cycles = 1000;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Threads malloc bursts of blocks, free them out of order, pass some to another "
                   "thread, and are replaced by new threads now and then (rptest's pattern).");
  o.number("threads", "threads at a time", c.threads, 1, 1024);
  o.number("cycles", "cycles per thread slot over the whole run", c.cycles, 1, 1ULL << 40);
  o.number("burst", "blocks allocated per cycle", c.burst, 1, 1 << 20);
  o.number("cross-pct", "percent of a burst passed to the next thread", c.cross_pct, 0, 100);
  o.number("thread-cycles", "cycles before a thread is replaced", c.thread_cycles, 1, 1ULL << 40);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (400 cycles)", c.quick);
  o.parse(argc, argv);
  if (c.quick) {
    c.cycles = 400;
    c.thread_cycles = std::min<uint64_t>(c.thread_cycles, 100);
  }
  return c;
}

struct alignas(64) Inbox {
  std::mutex m;
  std::vector<void*> items;
};

struct alignas(64) Tally {
  uint64_t made = 0, freed = 0, passed = 0, sum = 0;
};

size_t block_size(perfw::Rng& rng) {
  if (rng.below(256) == 0) return (64 << 10) + rng.below(192 << 10);
  return classic::octave_size(rng, 4, 13);
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  std::vector<Inbox> inbox(c.threads);
  std::vector<Tally> tally(c.threads);
  classic::Report rep;
  uint64_t generations = 0;

  for (uint64_t done = 0; done < c.cycles; done += c.thread_cycles, ++generations) {
    const uint64_t cycles = std::min(c.thread_cycles, c.cycles - done);
    rep.seconds += classic::run_threads(c.threads, [&](uint64_t t) {
      perfw::Rng rng(c.seed + 1000003 * t + 7 * done);
      Tally& my = tally[t];
      std::vector<void*> burst(c.burst), mine;
      for (uint64_t cy = 0; cy < cycles; ++cy) {
        {
          std::lock_guard<std::mutex> lock(inbox[t].m);
          mine.swap(inbox[t].items);
        }
        for (void* p : mine) my.sum += classic::free_block(kProgram, p);
        my.freed += mine.size();
        mine.clear();
        uint64_t id = (t << 36) + ((done + cy) << 16);
        for (uint64_t i = 0; i < c.burst; ++i)
          burst[i] = classic::new_block(kProgram, block_size(rng), id + i);
        my.made += c.burst;
        for (uint64_t i = c.burst; i > 1; --i) std::swap(burst[i - 1], burst[rng.below(i)]);
        uint64_t cross = c.threads > 1 ? c.burst * c.cross_pct / 100 : 0;
        if (cross) {
          Inbox& next = inbox[(t + 1) % c.threads];
          std::lock_guard<std::mutex> lock(next.m);
          next.items.insert(next.items.end(), burst.begin(), burst.begin() + cross);
          my.passed += cross;
        }
        for (uint64_t i = cross; i < c.burst; ++i)
          my.sum += classic::free_block(kProgram, burst[i]);
        my.freed += c.burst - cross;
      }
    });
  }
  uint64_t made = 0, freed = 0, passed = 0;
  for (uint64_t t = 0; t < c.threads; ++t) {  // what is still in the inboxes
    for (void* p : inbox[t].items) tally[t].sum += classic::free_block(kProgram, p);
    tally[t].freed += inbox[t].items.size();
    made += tally[t].made;
    freed += tally[t].freed;
    passed += tally[t].passed;
    rep.checksum += tally[t].sum;
  }
  if (made != freed) perfw::die(kProgram, "blocks were lost or freed twice");

  classic::print_report(origin, rep);
  std::printf("threads=%" PRIu64 "\ncycles=%" PRIu64 "\nblocks=%" PRIu64 "\npassed=%" PRIu64
              "\ngenerations=%" PRIu64 "\n",
              c.threads, c.cycles, made, passed, generations);
  return 0;
}
