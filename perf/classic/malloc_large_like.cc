// malloc-large-like: churn of blocks of a few MiB (the pattern of malloc-large).
//
// Pattern: one thread keeps --slots live blocks of --min-mb to --max-mb MiB (random sizes, not
// multiples of the page size) and --iterations times frees a random one and mallocs a new one in
// its place. Only the first and last 64 bytes of a block are written (and one byte every
// --touch-kb KiB if that is not 0), as a program does that reserves a large buffer and fills
// only part of it, so the figure is the allocator's own cost for large blocks: system calls
// (mmap/munmap, madvise), page faults on memory it hands out fresh, and how much freed memory it
// keeps for reuse.
//
// Checked: both stamped ends of every block are intact when it is freed; else exit 1.
//
// Output (stdout, key=value): seconds, checksum, iterations, slots, mib_allocated, then the
// process's counters (classic_common.h).
#include "classic_common.h"

namespace {

constexpr const char* kProgram = "malloc-large-like";

struct Config {
  uint64_t iterations = 20000;
  uint64_t slots = 20;
  uint64_t min_mb = 1;
  uint64_t max_mb = 8;
  uint64_t touch_kb = 0;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Frees and reallocates random blocks of a few MiB, touching only their ends "
                   "(malloc-large's pattern).");
  o.number("iterations", "replacements", c.iterations, 1, 1ULL << 40);
  o.number("slots", "live blocks", c.slots, 1, 1 << 20);
  o.number("min-mb", "smallest block in MiB", c.min_mb, 1, 1024);
  o.number("max-mb", "largest block in MiB", c.max_mb, 1, 1024);
  o.number("touch-kb", "also write one byte every N KiB (0: only the ends)", c.touch_kb, 0,
           1 << 20);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (1000 iterations)", c.quick);
  o.parse(argc, argv);
  if (c.max_mb < c.min_mb) o.usage_error("--max-mb must not be below --min-mb");
  if (c.quick) c.iterations = 1000;
  return c;
}

struct Block {
  uint8_t* p;
  size_t size;
  uint64_t tag;
};

void fill(const Config& c, Block& b) {
  classic::stamp(b.p, 64, b.tag);
  classic::stamp(b.p + b.size - 64, 64, ~b.tag);
  if (c.touch_kb)
    for (size_t off = 4096; off + 64 < b.size; off += c.touch_kb * 1024) b.p[off] = 1;
}

void release(Block& b) {
  if (!classic::stamped(b.p, 64, b.tag) || !classic::stamped(b.p + b.size - 64, 64, ~b.tag))
    perfw::die(kProgram, "a large block lost its contents");
  std::free(b.p);
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  perfw::Rng rng(c.seed);
  classic::Report rep;
  std::vector<Block> slots(c.slots, Block{nullptr, 0, 0});
  uint64_t tag = c.seed, allocated = 0;

  double t0 = perfw::now_seconds();
  for (uint64_t i = 0; i < c.iterations + c.slots; ++i) {
    Block& b = slots[i < c.slots ? i : rng.below(c.slots)];
    if (b.p != nullptr) release(b);
    b.size = (c.min_mb << 20) + rng.below(((c.max_mb - c.min_mb) << 20) + 1);
    b.size = std::max<size_t>(b.size, 128);
    b.p = static_cast<uint8_t*>(classic::xmalloc(kProgram, b.size));
    b.tag = ++tag;
    fill(c, b);
    allocated += b.size;
    rep.checksum += b.size;
  }
  for (Block& b : slots) release(b);
  rep.seconds = perfw::now_seconds() - t0;

  classic::print_report(origin, rep);
  std::printf("iterations=%" PRIu64 "\nslots=%" PRIu64 "\nmib_allocated=%" PRIu64 "\n",
              c.iterations, c.slots, allocated >> 20);
  return 0;
}
