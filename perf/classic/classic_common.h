// Shared helpers of the classic-patterns tier (perf/classic/*.cc, workload group `classic` of
// scripts/run-perf.sh).
//
// Every program of the tier is written here from a description of the allocation pattern a
// classic allocator benchmark is known for (named in each program's header); none contains code
// of those benchmarks. Like the other perf programs they call only the standard malloc API, never
// link libmesh and print `key=value` lines on stdout (perfw::Options gives --help and exit 2 on a
// bad flag). In addition each one
//   - times its own work (`seconds=`, from just before the first allocation of the workload to
//     just after the last free), which is the tier's time figure;
//   - checks its own results: a wrong computation, a block whose contents changed, a lost object
//     exits 1 (perfw::die) and prints nothing on stdout;
//   - has --quick (a run of a few tens of milliseconds, for ctest and `run-perf.sh --quick`);
//   - reports the process's own counters at the end (ProcessFacts): CPU time, page faults and
//     context switches, which the profile notes of perf/README.md use.
#ifndef MESH_PERF_CLASSIC_COMMON_H
#define MESH_PERF_CLASSIC_COMMON_H

#include <sys/resource.h>

#include <atomic>
#include <thread>

#include "../workload_common.h"

namespace classic {

// malloc that never returns NULL to its caller: the program stops instead (exit 1).
inline void* xmalloc(const char* program, size_t n) {
  void* p = std::malloc(n);
  if (p == nullptr) perfw::die(program, "malloc returned NULL");
  return p;
}

inline void* xrealloc(const char* program, void* old, size_t n) {
  void* p = std::realloc(old, n);
  if (p == nullptr) perfw::die(program, "realloc returned NULL");
  return p;
}

// A block "stamped" with a tag holds the tag in its first word and a byte derived from it in
// its last byte (blocks of at least 8 bytes; an 8-byte block holds only the tag). Checking both on
// free catches an allocator that handed out overlapping memory or a block that moved without its
// contents.
inline uint8_t tail_byte(uint64_t tag) {
  return static_cast<uint8_t>((tag * 0x9e3779b97f4a7c15ULL) >> 56);
}

inline void stamp(void* p, size_t n, uint64_t tag) {
  std::memcpy(p, &tag, sizeof tag);
  if (n > sizeof tag) static_cast<uint8_t*>(p)[n - 1] = tail_byte(tag);
}

inline bool stamped(const void* p, size_t n, uint64_t tag) {
  uint64_t head;
  std::memcpy(&head, p, sizeof head);
  return head == tag &&
         (n <= sizeof tag || static_cast<const uint8_t*>(p)[n - 1] == tail_byte(tag));
}

// Frees a stamped block after checking it; a mismatch stops the program.
inline void free_stamped(const char* program, void* p, size_t n, uint64_t tag) {
  if (!stamped(p, n, tag)) perfw::die(program, "a block lost its contents (tag mismatch)");
  std::free(p);
}

// A stamped block and what is needed to check it: the usual slot of a working set.
struct Tagged {
  void* p = nullptr;
  size_t size = 0;
  uint64_t tag = 0;
};

inline Tagged make_tagged(const char* program, size_t size, uint64_t tag) {
  Tagged t{xmalloc(program, size), size, tag};
  stamp(t.p, size, tag);
  return t;
}

// Checks and frees t's block (if any) and empties t.
inline void free_tagged(const char* program, Tagged& t) {
  if (t.p != nullptr) free_stamped(program, t.p, t.size, t.tag);
  t = Tagged{};
}

// A self-describing block: its stamp holds an id and the block's size (id << 24 | size), so a
// thread that did not allocate it can check and free it knowing only the pointer. Sizes from 8
// bytes to 16 MiB - 1.
inline void* new_block(const char* program, size_t size, uint64_t id) {
  void* p = xmalloc(program, size);
  stamp(p, size, id << 24 | size);
  return p;
}

// Checks and frees a block made by new_block; returns its id.
inline uint64_t free_block(const char* program, void* p) {
  uint64_t head;
  std::memcpy(&head, p, sizeof head);
  size_t size = head & 0xffffff;
  if (size < 8 || !stamped(p, size, head))
    perfw::die(program, "a block lost its contents (tag mismatch)");
  std::free(p);
  return head >> 24;
}

// Sizes with many small and few large requests, as programs make them: a power of two picked
// uniformly between 2^lo_log and 2^hi_log (so each octave is as likely as the next), then a
// uniform size inside that octave. Always at least 8 (room for a stamp).
inline size_t octave_size(perfw::Rng& rng, unsigned lo_log, unsigned hi_log) {
  unsigned k = lo_log + static_cast<unsigned>(rng.below(hi_log - lo_log + 1));
  size_t base = size_t{1} << k;
  size_t n = base + rng.below(base);
  return n < 8 ? 8 : n;
}

// Wall time of the workload and a checksum of its results (the same under every allocator for a
// given seed), plus the process's counters.
struct Report {
  double seconds = 0;
  uint64_t checksum = 0;
};

inline void print_report(const std::string& origin, const Report& r) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  std::printf("malloc_from=%s\n", origin.c_str());
  std::printf("seconds=%.4f\n", r.seconds);
  std::printf("checksum=%" PRIu64 "\n", r.checksum);
  std::printf("user_s=%.3f\nsys_s=%.3f\n", secs(ru.ru_utime), secs(ru.ru_stime));
  std::printf("minflt=%ld\nmajflt=%ld\n", ru.ru_minflt, ru.ru_majflt);
  std::printf("nvcsw=%ld\nnivcsw=%ld\n", ru.ru_nvcsw, ru.ru_nivcsw);
  std::printf("max_rss_kb=%ld\n", ru.ru_maxrss);
}

// Runs body(i) on `threads` threads that start together; returns the wall time from the start
// signal until the last one finished. Thread creation is outside the timed part.
template <class Body>
double run_threads(uint64_t threads, Body body) {
  std::atomic<uint64_t> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (uint64_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      body(t);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  double t0 = perfw::now_seconds();
  go.store(true, std::memory_order_release);
  for (std::thread& th : pool) th.join();
  return perfw::now_seconds() - t0;
}

}  // namespace classic

#endif  // MESH_PERF_CLASSIC_COMMON_H
