// mleak-like: a program that leaks slowly while it churns (the pattern of mleak).
//
// Pattern: one thread keeps --slots live objects of 16-1024 bytes and --iterations times replaces
// a random one (free, then malloc of a new random size); one allocation in --leak-every is never
// freed: the program forgets it, as a leaking program does. The leaked objects accumulate
// scattered among the churning ones, so the heap grows slowly and every span holds a few objects
// that will never be freed. The figures that matter are time and how much memory the allocator
// holds for the little that is live (peak PSS): an allocator that cannot reuse the space around
// leaked objects grows faster than the leak.
//
// The leaked pointers are remembered in a table outside the heap (an mmap of its own) only so
// that the program can check at the end that they still hold their stamps; they are not freed.
// Checked: every churned object on free and every leaked object at the end; else exit 1.
//
// Output (stdout, key=value): seconds, checksum, iterations, leaked, leaked_kb (requested bytes),
// end_pss_kb, then the process's counters (classic_common.h).
#include <sys/mman.h>

#include "classic_common.h"

namespace {

constexpr const char* kProgram = "mleak-like";

struct Config {
  uint64_t iterations = 8'000'000;
  uint64_t slots = 20000;
  uint64_t leak_every = 100;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Replaces random objects of a working set and leaks one allocation in N "
                   "(mleak's pattern).");
  o.number("iterations", "replacements", c.iterations, 1, 1ULL << 40);
  o.number("slots", "live objects in the working set", c.slots, 1, 1 << 24);
  o.number("leak-every", "leak one allocation in N", c.leak_every, 1, 1ULL << 40);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (300000 iterations)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.iterations = 300'000;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  perfw::Rng rng(c.seed);
  classic::Report rep;

  const uint64_t max_leaks = c.iterations / c.leak_every + 1;
  void* table = mmap(nullptr, max_leaks * sizeof(classic::Tagged), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (table == MAP_FAILED) perfw::die(kProgram, "cannot map the table of leaked objects");
  classic::Tagged* leaks = static_cast<classic::Tagged*>(table);
  uint64_t leaked = 0, leaked_bytes = 0, tag = c.seed << 20;
  std::vector<classic::Tagged> slots(c.slots);

  double t0 = perfw::now_seconds();
  auto make = [&] { return classic::make_tagged(kProgram, 16 + rng.below(1009), ++tag); };
  for (classic::Tagged& s : slots) s = make();
  for (uint64_t i = 1; i <= c.iterations; ++i) {
    classic::Tagged& s = slots[rng.below(c.slots)];
    classic::free_tagged(kProgram, s);
    s = make();
    if (i % c.leak_every == 0 && leaked < max_leaks) {
      classic::Tagged lost = make();
      leaks[leaked++] = lost;
      leaked_bytes += lost.size;
    }
  }
  for (classic::Tagged& s : slots) classic::free_tagged(kProgram, s);
  rep.seconds = perfw::now_seconds() - t0;
  long end_pss = perfw::smaps_rollup_kib("Pss");
  for (uint64_t i = 0; i < leaked; ++i) {
    if (!classic::stamped(leaks[i].p, leaks[i].size, leaks[i].tag))
      perfw::die(kProgram, "a leaked object lost its contents");
    rep.checksum += leaks[i].size;
  }

  classic::print_report(origin, rep);
  std::printf("iterations=%" PRIu64 "\nleaked=%" PRIu64 "\nleaked_kb=%" PRIu64 "\nend_pss_kb=%ld\n",
              c.iterations, leaked, leaked_bytes >> 10, end_pss);
  return 0;
}
