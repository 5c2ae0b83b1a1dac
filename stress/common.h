// Helpers shared by the stress programs: command line parsing, a fast PRNG, object stamping and
// verification, failure reporting, a watchdog, timing and RSS sampling.
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
// Random numbers: SplitMix64 (tiny state, good enough statistical quality, very fast).
// ---------------------------------------------------------------------------------------------

// Bijective 64-bit mixing function (the SplitMix64 finaliser).
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  // Uniform in [0, n), n > 0 (multiply-shift; the tiny bias is irrelevant here).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // True with probability 1/n.
  bool one_in(uint64_t n) { return below(n) == 0; }

 private:
  uint64_t state_;
};

// A seed from the clock and the pid, for runs that do not pass --seed.
inline uint64_t default_seed() {
  auto ticks = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  return mix64(ticks ^ (static_cast<uint64_t>(getpid()) << 32)) & 0xffffffffULL;
}

// Size mix used by the churn workloads: mostly small, some medium, occasionally large.
inline size_t random_size(Rng& rng) {
  uint64_t r = rng.below(1000);
  if (r < 640) return rng.range(8, 128);           // 64.0% tiny
  if (r < 940) return rng.range(129, 1024);        // 30.0% small
  if (r < 999) return rng.range(1025, 64 * 1024);  //  5.9% medium
  return rng.range(64 * 1024 + 1, 1024 * 1024);    //  0.1% large
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

// Returns the offset of the first byte in [from, to) that differs from `fill`, or `to`.
inline size_t find_fill_mismatch(const uint8_t* b, size_t from, size_t to, uint8_t fill) {
  const uint64_t pattern = 0x0101010101010101ULL * fill;
  size_t i = from;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    if (w != pattern) break;
  }
  for (; i < to; ++i)
    if (b[i] != fill) return i;
  return to;
}

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
    size_t bad = find_fill_mismatch(b, 0, n, fill);
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
    size_t bad = find_fill_mismatch(b, from, to, fill);
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
// Command line: positional arguments and --options, all unsigned integers, plus boolean flags.
// --help prints usage and exits 0; anything malformed prints an error and the usage to stderr and
// exits 2. Both "--name value" and "--name=value" are accepted.
// ---------------------------------------------------------------------------------------------

class Cli {
 public:
  Cli(const char* program, const char* summary) : summary_(summary) { g_program = program; }

  // A required positional argument (or optional if `required` is false: then the current value
  // of `out` is the default).
  void positional(const char* name, const char* help, uint64_t& out, uint64_t lo, uint64_t hi,
                  bool required = true) {
    args_.push_back({name, help, &out, nullptr, lo, hi, required, true, nullptr});
  }
  // "--name N"; the current value of `out` is the default, shown in the usage unless
  // `default_text` describes it instead.
  void option(const char* name, const char* help, uint64_t& out, uint64_t lo, uint64_t hi,
              const char* default_text = nullptr) {
    args_.push_back({name, help, &out, nullptr, lo, hi, false, false, default_text});
  }
  // "--name" sets `out` to true.
  void flag(const char* name, const char* help, bool& out) {
    args_.push_back({name, help, nullptr, &out, 0, 0, false, false, nullptr});
  }
  // Free text appended to the usage (examples, notes).
  void epilog(const char* text) { epilog_ = text; }

  void parse(int argc, char** argv) {
    std::vector<const char*> positionals;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        print_usage(stdout);
        std::exit(0);
      }
      if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
        parse_option(a, i, argc, argv);
      } else if (a.size() > 1 && a[0] == '-') {
        usage_error("unknown option '" + a + "'");
      } else {
        positionals.push_back(argv[i]);
      }
    }
    size_t next = 0;
    for (Arg& arg : args_) {
      if (!arg.positional) continue;
      if (next < positionals.size()) {
        set_number(arg, positionals[next++]);
      } else if (arg.required) {
        usage_error(std::string("missing argument ") + arg.name);
      }
    }
    if (next < positionals.size())
      usage_error(std::string("unexpected argument '") + positionals[next] + "'");
    check_expected_allocator();
  }

  // With STRESS_EXPECT_MESH=1 in the environment (set by the ctest tests and run-stress.sh for
  // libmesh runs), fails unless libmesh is really loaded: the dynamic loader only warns when a
  // preload cannot be loaded, and the run would then silently test the system allocator.
  static void check_expected_allocator() {
    const char* expect = std::getenv("STRESS_EXPECT_MESH");
    if (expect == nullptr || std::strcmp(expect, "1") != 0) return;
    if (dlsym(RTLD_DEFAULT, "mesh_get_stats") == nullptr)
      fail("STRESS_EXPECT_MESH=1 but libmesh is not loaded (mesh_get_stats not found)");
  }

 private:
  struct Arg {
    const char* name;
    const char* help;
    uint64_t* number;
    bool* flag;
    uint64_t lo, hi;
    bool required;
    bool positional;
    const char* default_text;
  };

  void parse_option(const std::string& a, int& i, int argc, char** argv) {
    size_t eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    for (Arg& arg : args_) {
      if (arg.positional || name != arg.name) continue;
      if (arg.flag != nullptr) {
        if (eq != std::string::npos) usage_error("option --" + name + " takes no value");
        *arg.flag = true;
        return;
      }
      if (eq != std::string::npos) {
        set_number(arg, a.c_str() + eq + 1);
      } else {
        if (i + 1 >= argc) usage_error("option --" + name + " needs a value");
        set_number(arg, argv[++i]);
      }
      return;
    }
    usage_error("unknown option '" + a + "'");
  }

  void set_number(Arg& arg, const char* text) {
    uint64_t v = 0;
    bool ok = *text != '\0';
    for (const char* c = text; ok && *c != '\0'; ++c) {
      if (*c < '0' || *c > '9' || v > (UINT64_MAX - 9) / 10)
        ok = false;
      else
        v = v * 10 + static_cast<uint64_t>(*c - '0');
    }
    if (!ok || v < arg.lo || v > arg.hi) {
      usage_error(std::string("bad value '") + text + "' for " + arg.name + " (expected " +
                  std::to_string(arg.lo) + ".." + std::to_string(arg.hi) + ")");
    }
    *arg.number = v;
  }

 public:
  // Reports a bad command line (e.g. inconsistent values) like the parser does: exits 2.
  [[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "%s: %s\n", g_program, msg.c_str());
    print_usage(stderr);
    std::exit(2);
  }

 private:
  void print_usage(FILE* out) const {
    std::fprintf(out, "usage: %s [options]", g_program);
    for (const Arg& a : args_)
      if (a.positional) std::fprintf(out, a.required ? " %s" : " [%s]", a.name);
    std::fprintf(out, "\n  %s\n\n", summary_);
    for (const Arg& a : args_) {
      if (!a.positional) continue;
      std::fprintf(out, "  %-22s %s", a.name, a.help);
      if (!a.required) std::fprintf(out, " (default %" PRIu64 ")", *a.number);
      std::fprintf(out, "\n");
    }
    std::fprintf(out, "\noptions:\n");
    for (const Arg& a : args_) {
      if (a.positional) continue;
      std::string spec = std::string("--") + a.name + (a.flag ? "" : " N");
      std::fprintf(out, "  %-22s %s", spec.c_str(), a.help);
      if (a.default_text != nullptr)
        std::fprintf(out, " (default %s)", a.default_text);
      else if (a.number != nullptr)
        std::fprintf(out, " (default %" PRIu64 ")", *a.number);
      std::fprintf(out, "\n");
    }
    std::fprintf(out, "  %-22s %s\n", "--help", "show this text and exit");
    if (epilog_ != nullptr) std::fprintf(out, "\n%s\n", epilog_);
  }

  const char* summary_;
  const char* epilog_ = nullptr;
  std::vector<Arg> args_;
};

}  // namespace stress

#endif  // MESH_STRESS_COMMON_H
