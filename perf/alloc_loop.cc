// alloc-loop: the smallest program that exercises an allocator's fast paths, for counting
// instructions under callgrind (scripts/count-instructions.py) rather than for timing.
//
// pair mode (default): --iterations times malloc(--size), write one byte, free; with --usable,
// malloc_usable_size of the block before it is freed (servers such as Redis ask for the size of
// every block they allocate and free).
// batch mode (--batch): --iterations times 1000 mallocs of sizes drawn from [--min-size,
// --max-size], one byte written into each, then 1000 frees in a fixed shuffled order.
// Sizes and the free order come from a fixed seed, so every allocator sees the same calls.
//
// Output (stdout, key=value): malloc_from mode iterations mallocs frees usable_calls
#include <malloc.h>

#include "workload_common.h"

namespace {

constexpr const char* kProgram = "alloc-loop";
constexpr size_t kBatch = 1000;

struct Config {
  uint64_t iterations = 1'000'000;
  uint64_t size = 64;
  uint64_t min_size = 16;
  uint64_t max_size = 128;
  bool batch = false;
  bool usable = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Runs malloc/free pairs (or batches) and nothing else, so that an instruction "
                   "count under callgrind divided by the calls is the cost of one malloc and one "
                   "free. Not a timing benchmark.");
  o.number("iterations", "pairs, or batches of 1000 with --batch", c.iterations, 1, 1ULL << 32);
  o.number("size", "bytes per allocation in pair mode", c.size, 0, 1ULL << 32);
  o.number("min-size", "smallest allocation in batch mode", c.min_size, 1, 1ULL << 32);
  o.number("max-size", "largest allocation in batch mode", c.max_size, 1, 1ULL << 32);
  o.flag("batch", "batches of 1000 mallocs, then 1000 frees in a shuffled order", c.batch);
  o.flag("usable", "in pair mode, malloc_usable_size of each block before its free", c.usable);
  o.parse(argc, argv);
  if (c.max_size < c.min_size) o.usage_error("--max-size must not be below --min-size");
  if (c.usable && c.batch) o.usage_error("--usable is for pair mode, not with --batch");
  return c;
}

void touch(void* p) {
  if (p == nullptr) perfw::die(kProgram, "malloc returned NULL");
  *static_cast<volatile unsigned char*>(p) = 1;
}

}  // namespace

int main(int argc, char** argv) {
  Config c = parse(argc, argv);
  uint64_t mallocs = 0, usable_calls = 0;
  if (!c.batch) {
    size_t sum = 0;
    for (uint64_t i = 0; i < c.iterations; ++i) {
      void* p = std::malloc(c.size);
      touch(p);
      if (c.usable) sum += malloc_usable_size(p);
      std::free(p);
    }
    mallocs = c.iterations;
    if (c.usable) {
      usable_calls = c.iterations;
      if (sum < c.size * c.iterations) perfw::die(kProgram, "malloc_usable_size below the size asked for");
    }
  } else {
    perfw::Rng rng(0x5eed);
    std::vector<size_t> sizes(4096);
    for (size_t& s : sizes) s = rng.between(c.min_size, c.max_size);
    std::vector<size_t> order(kBatch);
    for (size_t i = 0; i < kBatch; ++i) order[i] = i;
    for (size_t i = kBatch - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    std::vector<void*> ptrs(kBatch);
    size_t cursor = 0;
    for (uint64_t it = 0; it < c.iterations; ++it) {
      for (size_t i = 0; i < kBatch; ++i) {
        ptrs[i] = std::malloc(sizes[cursor++ & (sizes.size() - 1)]);
        touch(ptrs[i]);
      }
      for (size_t i = 0; i < kBatch; ++i) std::free(ptrs[order[i]]);
    }
    mallocs = c.iterations * kBatch;
  }
  std::printf("malloc_from=%s\nmode=%s\niterations=%llu\nmallocs=%llu\nfrees=%llu\nusable_calls=%llu\n",
              perfw::checked_malloc_origin(kProgram).c_str(), c.batch ? "batch" : "pair",
              static_cast<unsigned long long>(c.iterations), static_cast<unsigned long long>(mallocs),
              static_cast<unsigned long long>(mallocs), static_cast<unsigned long long>(usable_calls));
  return 0;
}
