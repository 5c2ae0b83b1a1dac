// false-sharing: small objects written hard by several threads (the patterns of cache-thrash and
// cache-scratch).
//
// Active mode (default; cache-thrash's pattern): every thread repeatedly mallocs one small object
// (--size bytes), writes each of its bytes --writes times, checks them and frees it. An allocator
// that hands objects of different threads out of the same cache line makes the threads' writes
// fight over that line even though no data is shared.
//
// Passive mode (--passive; cache-scratch's pattern): the main thread first mallocs one small
// object per thread, back to back, and hands object i to thread i, which frees it before starting
// the same loop. An allocator that gives the freed object (or its neighbours) back to the thread
// that freed it puts the threads' objects next to each other in the main thread's cache lines.
//
// With --threads 1 there is nothing to share: the figure is then the cost of malloc + free
// around a small, hot object, including where in its span the allocator places it.
//
// Checked: after its writes every byte of the object holds the expected count; else exit 1.
//
// Output (stdout, key=value): seconds, checksum, threads, iterations, writes, size, passive, then
// the process's counters (classic_common.h).
#include "classic_common.h"

namespace {

constexpr const char* kProgram = "false-sharing";

struct Config {
  uint64_t threads = 2;
  uint64_t iterations = 200000;
  uint64_t writes = 1000;
  uint64_t size = 8;
  uint64_t seed = 42;
  bool passive = false;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Threads malloc small objects, write them hard and free them; --passive hands "
                   "each thread an object of the main thread's first (cache-thrash and "
                   "cache-scratch patterns).");
  o.number("threads", "threads", c.threads, 1, 1024);
  o.number("iterations", "objects each thread allocates in turn", c.iterations, 1, 1ULL << 40);
  o.number("writes", "passes of writes over each object", c.writes, 1, 1ULL << 32);
  o.number("size", "object size in bytes", c.size, 1, 4096);
  o.number("seed", "value the objects start from", c.seed, 0, UINT64_MAX);
  o.flag("passive", "the main thread allocates the first object of every thread", c.passive);
  o.flag("quick", "a short run (5000 iterations)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.iterations = 5000;
  return c;
}

// Writes every byte `writes` times (volatile: each write reaches the cache line) and checks.
uint64_t hammer(const Config& c, volatile uint8_t* p, uint8_t start) {
  for (uint64_t j = 0; j < c.size; ++j) p[j] = start;
  for (uint64_t r = 0; r < c.writes; ++r)
    for (uint64_t j = 0; j < c.size; ++j) p[j] = static_cast<uint8_t>(p[j] + 1);
  uint64_t sum = 0;
  const uint8_t want = static_cast<uint8_t>(start + c.writes);
  for (uint64_t j = 0; j < c.size; ++j) {
    if (p[j] != want) perfw::die(kProgram, "an object does not hold what was written");
    sum += p[j];
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  classic::Report rep;

  std::vector<void*> handed(c.threads, nullptr);
  if (c.passive)
    for (void*& p : handed) p = classic::xmalloc(kProgram, c.size);
  std::vector<uint64_t> sums(c.threads * 8, 0);  // one cache line per thread
  rep.seconds = classic::run_threads(c.threads, [&](uint64_t t) {
    std::free(handed[t]);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < c.iterations; ++i) {
      auto* p = static_cast<uint8_t*>(classic::xmalloc(kProgram, c.size));
      sum += hammer(c, p, static_cast<uint8_t>(c.seed + t + i));
      std::free(p);
    }
    sums[t * 8] = sum;
  });
  for (uint64_t t = 0; t < c.threads; ++t) rep.checksum += sums[t * 8];

  classic::print_report(origin, rep);
  std::printf("threads=%" PRIu64 "\niterations=%" PRIu64 "\nwrites=%" PRIu64 "\nsize=%" PRIu64
              "\npassive=%d\n",
              c.threads, c.iterations, c.writes, c.size, c.passive ? 1 : 0);
  return 0;
}
