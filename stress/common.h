// Helpers shared by the stress programs: object stamping and verification, failure reporting, a
// watchdog, timing and RSS sampling; the command line, the PRNG and byte comparisons come from
// the harness support library (stress/support).
//
// Everything here uses only the standard malloc/new API, so the programs run unchanged under any
// allocator, whether it is preloaded (LD_PRELOAD) or linked in.
#ifndef MESH_STRESS_COMMON_H
#define MESH_STRESS_COMMON_H

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "harness/cli.h"
#include "harness/pattern.h"
#include "harness/rng.h"

namespace stress {

// ---------------------------------------------------------------------------------------------
// Program name and failure reporting
// ---------------------------------------------------------------------------------------------

inline const char* g_program = "stress";

// Prints "<program>: FAIL: <message>" and exits with status 1 at once, without running
// destructors or atexit handlers (other threads may still be using the heap).
[[noreturn]] inline void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] inline void fail(const char* fmt, ...) {
  std::fflush(stdout);
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "%s: FAIL: %s\n", g_program, msg);
  _exit(1);
}

// Writes a string to a file descriptor with write(2) only: usable in signal handlers.
inline void write_raw(int fd, const char* s) {
  size_t len = std::strlen(s);
  while (len > 0) {
    ssize_t w = ::write(fd, s, len);
    if (w <= 0) return;
    s += w;
    len -= static_cast<size_t>(w);
  }
}

// ---------------------------------------------------------------------------------------------
// Watchdog: turns a hang (typically a deadlock inside the allocator) into a failure.
// ---------------------------------------------------------------------------------------------

inline char g_watchdog_msg[256];

// Optional clean-up run by the watchdog before it exits (async-signal-safe calls only).
inline void (*g_watchdog_hook)() = nullptr;

inline void watchdog_handler(int) {
  if (g_watchdog_hook != nullptr) g_watchdog_hook();
  write_raw(2, g_watchdog_msg);
  _exit(1);
}

// After `seconds` (0 = never) prints "<program>: FAIL: <what>" and exits 1. Uses SIGALRM.
inline void arm_watchdog(unsigned seconds, const char* what) {
  if (seconds == 0) return;
  std::snprintf(g_watchdog_msg, sizeof g_watchdog_msg, "%s: FAIL: %s (watchdog fired after %u s)\n",
                g_program, what, seconds);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = watchdog_handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, nullptr);
  alarm(seconds);
}

// ---------------------------------------------------------------------------------------------
// Time and memory
// ---------------------------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Resident set size of this process in bytes, from /proc/self/statm (0 if unavailable).
// Reads with open/read so it does not allocate.
inline uint64_t rss_bytes() {
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long total = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &total, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

constexpr double kMiB = 1024.0 * 1024.0;

// Decides when a countdown prints a progress line: whenever another tenth of the work is done,
// and at least every `max_gap` seconds in between.
class ProgressTicker {
 public:
  explicit ProgressTicker(uint64_t total, double max_gap = 5.0)
      : total_(total), max_gap_(max_gap) {}

  bool due(uint64_t left, double now) {
    uint64_t tenths_done = total_ == 0 ? 10 : (total_ - left) * 10 / total_;
    if (tenths_done <= tenths_printed_ && now - last_ < max_gap_) return false;
    tenths_printed_ = tenths_done;
    last_ = now;
    return true;
  }

 private:
  uint64_t total_;
  double max_gap_;
  uint64_t tenths_printed_ = 0;
  double last_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Random numbers: SplitMix64 with multiply-shift reduction (harness/rng.h), the sequence a
// printed seed replays.
// ---------------------------------------------------------------------------------------------

using harness::mix64;
using harness::Rng;

// A seed from the clock and the pid, for runs that do not pass --seed.
inline uint64_t default_seed() {
  auto ticks = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  return mix64(ticks ^ (static_cast<uint64_t>(getpid()) << 32)) & 0xffffffffULL;
}

// Size mix used by the churn workloads: mostly small, some medium, occasionally large.
inline size_t random_size(Rng& rng) {
  uint64_t r = rng.below(1000);
  if (r < 640) return rng.between(8, 128);           // 64.0% tiny
  if (r < 940) return rng.between(129, 1024);        // 30.0% small
  if (r < 999) return rng.between(1025, 64 * 1024);  //  5.9% medium
  return rng.between(64 * 1024 + 1, 1024 * 1024);    //  0.1% large
}

// ---------------------------------------------------------------------------------------------
// Stamping: every object carries content derived from its address, size and a seed, so that any
// overlap between live objects, a lost write, a stale page or a wrong copy is detected when it is
// verified.
//
// Layout for an object of n bytes with tag T = f(address, n, seed):
//   n >= 8:  bytes [0, 8) hold T; n >= 16: bytes [n-8, n) hold ~T;
//   full mode: every other byte holds the fill byte (low byte of T, or'ed with 1 so never 0);
//   n < 8:   every byte holds the fill byte.
// Light mode writes only the head and tail words (cheaper, for throughput benchmarks).
// ---------------------------------------------------------------------------------------------

enum class StampMode { kFull, kLight };

inline uint64_t stamp_tag(const void* p, size_t n, uint64_t seed) {
  return mix64(reinterpret_cast<uintptr_t>(p) ^ mix64(n + (seed << 20)));
}

inline uint8_t fill_byte(uint64_t tag) {
  return static_cast<uint8_t>(tag | 1);
}

inline void stamp(void* p, size_t n, uint64_t seed, StampMode mode = StampMode::kFull) {
  auto* b = static_cast<uint8_t*>(p);
  uint64_t tag = stamp_tag(p, n, seed);
  if (n < 8) {
    std::memset(b, fill_byte(tag), n);
    return;
  }
  std::memcpy(b, &tag, 8);
  if (n >= 16) {
    uint64_t inv = ~tag;
    if (mode == StampMode::kFull) std::memset(b + 8, fill_byte(tag), n - 16);
    std::memcpy(b + n - 8, &inv, 8);
  } else if (mode == StampMode::kFull) {
    std::memset(b + 8, fill_byte(tag), n - 8);
  }
}

using harness::find_byte_mismatch;

[[noreturn]] inline void report_corruption(const void* p, size_t n, const char* where, size_t off,
                                           uint64_t expected, uint64_t found, const char* ctx) {
  fail("%s: object %p (size %zu) corrupted: %s at offset %zu is 0x%" PRIx64 ", expected 0x%" PRIx64,
       ctx, p, n, where, off, found, expected);
}

// Checks the stamp written by stamp() and fails (naming the object) on any difference.
// Large objects in full mode are sampled: the first and last 4 KiB and one word per 512 bytes.
inline void verify(const void* p, size_t n, uint64_t seed, const char* ctx,
                   StampMode mode = StampMode::kFull) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t tag = stamp_tag(p, n, seed);
  uint8_t fill = fill_byte(tag);
  if (n < 8) {
    size_t bad = find_byte_mismatch(b, 0, n, fill);
    if (bad != n) report_corruption(p, n, "byte", bad, fill, b[bad], ctx);
    return;
  }
  uint64_t head;
  std::memcpy(&head, b, 8);
  if (head != tag) report_corruption(p, n, "header word", 0, tag, head, ctx);
  size_t body_end = n;
  if (n >= 16) {
    uint64_t tail;
    std::memcpy(&tail, b + n - 8, 8);
    if (tail != ~tag) report_corruption(p, n, "trailer word", n - 8, ~tag, tail, ctx);
    body_end = n - 8;
  }
  if (mode == StampMode::kLight) return;

  // Checks the body bytes in [from, to) against the fill byte.
  auto check = [&](size_t from, size_t to) {
    size_t bad = find_byte_mismatch(b, from, to, fill);
    if (bad != to) report_corruption(p, n, "body byte", bad, fill, b[bad], ctx);
  };
  constexpr size_t kDense = 4096;
  if (body_end - 8 <= 2 * kDense) {
    check(8, body_end);
    return;
  }
  size_t head_end = 8 + kDense, tail_begin = body_end - kDense;
  check(8, head_end);
  check(tail_begin, body_end);
  for (size_t off = head_end; off + 8 <= tail_begin; off += 512) check(off, off + 8);
}

// Allocates n bytes with malloc, failing loudly on NULL (the stress programs never ask for more
// than the machine has).
inline void* xmalloc(size_t n, const char* ctx) {
  void* p = std::malloc(n);
  if (p == nullptr) fail("%s: malloc(%zu) returned NULL", ctx, n);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Compaction: libmesh's mesh_compact() when it is loaded, otherwise malloc_trim(0), so the
// programs that compact still run under any allocator.
// ---------------------------------------------------------------------------------------------

using CompactFn = size_t (*)();

inline CompactFn find_mesh_compact() {
  return reinterpret_cast<CompactFn>(dlsym(RTLD_DEFAULT, "mesh_compact"));
}

// Runs one compaction; returns the meshes made (libmesh) or 0.
inline size_t compact_now(CompactFn mesh_compact) {
  if (mesh_compact != nullptr) return mesh_compact();
  malloc_trim(0);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Command line: harness::Cli (positional arguments, unsigned --options, flags; --help exits 0,
// a malformed command line exits 2), which also names the program in failure messages and checks
// that the expected allocator is loaded.
// ---------------------------------------------------------------------------------------------

// With STRESS_EXPECT_MESH=1 in the environment (set by the ctest tests and run-stress.sh for
// libmesh runs), fails unless libmesh is really loaded: the dynamic loader only warns when a
// preload cannot be loaded, and the run would then silently test the system allocator.
inline void check_expected_allocator() {
  const char* expect = std::getenv("STRESS_EXPECT_MESH");
  if (expect == nullptr || std::strcmp(expect, "1") != 0) return;
  if (dlsym(RTLD_DEFAULT, "mesh_get_stats") == nullptr)
    fail("STRESS_EXPECT_MESH=1 but libmesh is not loaded (mesh_get_stats not found)");
}

class Cli : public harness::Cli {
 public:
  Cli(const char* program, const char* summary) : harness::Cli(program, summary) {
    g_program = program;
  }

  void parse(int argc, char** argv) {
    harness::Cli::parse(argc, argv);
    check_expected_allocator();
  }
};

}  // namespace stress

#endif  // MESH_STRESS_COMMON_H
