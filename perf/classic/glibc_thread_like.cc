// glibc-thread-like: threads replacing random blocks of a working set (the pattern of glibc's
// benchtests malloc-thread).
//
// Pattern: each of --threads threads owns --slots slots and, --iterations times, picks a random
// slot, frees the block there and mallocs a new one of a random size (octaves from 16 B to 8 KiB
// equally likely, so most blocks are small and most bytes are in large ones). Blocks never change
// threads; the threads only share the allocator. A thread's working set (about 1.3 MiB with the
// defaults) is larger than its cache, so refills and returns of spans run all the time.
//
// Checked: every block holds its stamp when it is freed; else exit 1.
//
// Output (stdout, key=value): seconds, checksum, threads, iterations (per thread), slots, then the
// process's counters (classic_common.h).
#include "classic_common.h"

namespace {

constexpr const char* kProgram = "glibc-thread-like";

struct Config {
  uint64_t threads = 2;
  uint64_t iterations = 4'000'000;
  uint64_t slots = 1024;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Threads free and reallocate random blocks of their own working sets "
                   "(glibc malloc-thread's pattern).");
  o.number("threads", "threads", c.threads, 1, 1024);
  o.number("iterations", "replacements per thread", c.iterations, 1, 1ULL << 40);
  o.number("slots", "blocks each thread keeps", c.slots, 1, 1 << 24);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (200000 iterations)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.iterations = 200'000;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  classic::Report rep;
  std::vector<uint64_t> sums(c.threads * 8, 0);

  rep.seconds = classic::run_threads(c.threads, [&](uint64_t t) {
    perfw::Rng rng(c.seed * 7919 + t);
    std::vector<classic::Tagged> slots(c.slots);
    uint64_t tag = (t + 1) << 48, sum = 0;
    for (uint64_t i = 0; i < c.iterations; ++i) {
      classic::Tagged& s = slots[rng.below(c.slots)];
      classic::free_tagged(kProgram, s);
      s = classic::make_tagged(kProgram, classic::octave_size(rng, 4, 12), ++tag);
      sum += s.size;
    }
    for (classic::Tagged& s : slots) classic::free_tagged(kProgram, s);
    sums[t * 8] = sum;
  });
  for (uint64_t t = 0; t < c.threads; ++t) rep.checksum += sums[t * 8];

  classic::print_report(origin, rep);
  std::printf("threads=%" PRIu64 "\niterations=%" PRIu64 "\nslots=%" PRIu64 "\n", c.threads,
              c.iterations, c.slots);
  return 0;
}
