// alloc-test-like: random allocations and frees over a working set that grows and shrinks (the
// pattern of the alloc-test benchmark).
//
// Pattern: each of --threads threads, --ops times, either mallocs a block or frees a random one
// of its own. The chance of allocating is 3/4 while the thread is growing its set and 1/4 while
// it is shrinking it; it turns to shrinking at --max-live blocks and back to growing below a
// quarter of that, so the set swings between 1/4 and all of --max-live blocks and the allocator
// sees long stretches of mostly-malloc and mostly-free. Sizes: octaves from 8 B to 2 KiB equally
// likely, one block in 32 of 2-64 KiB. Each block is written at both ends. Threads never share
// blocks.
//
// Checked: every block holds its stamp when it is freed; else exit 1.
//
// Output (stdout, key=value): seconds, checksum, threads, ops (per thread), swings (turns from
// growing to shrinking), then the process's counters (classic_common.h).
#include "classic_common.h"

namespace {

constexpr const char* kProgram = "alloc-test-like";

struct Config {
  uint64_t threads = 2;
  uint64_t ops = 8'000'000;
  uint64_t max_live = 20000;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Threads malloc and free random blocks over a working set that swings between "
                   "a quarter and all of --max-live (alloc-test's pattern).");
  o.number("threads", "threads", c.threads, 1, 1024);
  o.number("ops", "operations (a malloc or a free) per thread", c.ops, 1, 1ULL << 40);
  o.number("max-live", "largest working set in blocks", c.max_live, 4, 1 << 26);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (400000 operations)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.ops = 400'000;
  return c;
}

size_t block_size(perfw::Rng& rng) {
  if (rng.below(32) == 0) return (2 << 10) + rng.below(62 << 10);
  return classic::octave_size(rng, 3, 10);
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  std::vector<uint64_t> sums(c.threads * 8, 0), swings(c.threads * 8, 0);
  classic::Report rep;

  rep.seconds = classic::run_threads(c.threads, [&](uint64_t t) {
    perfw::Rng rng(c.seed * 31 + t);
    std::vector<void*> live;
    live.reserve(c.max_live);
    bool growing = true;
    uint64_t id = t << 34, sum = 0, turns = 0;
    for (uint64_t op = 0; op < c.ops; ++op) {
      if (growing && live.size() >= c.max_live) {
        growing = false;
        ++turns;
      } else if (!growing && live.size() < c.max_live / 4) {
        growing = true;
      }
      bool alloc = live.empty() || rng.below(4) < (growing ? 3u : 1u);
      if (alloc) {
        live.push_back(classic::new_block(kProgram, block_size(rng), ++id));
      } else {
        size_t k = rng.below(live.size());
        sum += classic::free_block(kProgram, live[k]);
        live[k] = live.back();
        live.pop_back();
      }
    }
    for (void* p : live) sum += classic::free_block(kProgram, p);
    sums[t * 8] = sum;
    swings[t * 8] = turns;
  });
  uint64_t turns = 0;
  for (uint64_t t = 0; t < c.threads; ++t) {
    rep.checksum += sums[t * 8];
    turns += swings[t * 8];
  }

  classic::print_report(origin, rep);
  std::printf("threads=%" PRIu64 "\nops=%" PRIu64 "\nswings=%" PRIu64 "\n", c.threads, c.ops,
              turns);
  return 0;
}
