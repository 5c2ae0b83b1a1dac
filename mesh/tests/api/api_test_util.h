// Shared helpers of the libmesh API conformance tests (mesh/tests/api).
//
// The tests link libmesh (target `mesh`) so that malloc & co resolve to it. Built with
// MESH_API_TESTS_AGAINST_GLIBC=ON they link nothing extra and run against glibc instead; the
// libmesh-only checks then skip (MESH_REQUIRE_LIBMESH). The extension API (mesh.h) is always
// reached through dlsym so the same sources build in both modes.
#ifndef MESH_TESTS_API_API_TEST_UTIL_H
#define MESH_TESTS_API_API_TEST_UTIL_H

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "harness/pattern.h"
#include "mesh/mesh.h"

namespace mesh_api_test {

#ifdef MESH_API_EXPECT_LIBMESH
inline constexpr bool kExpectLibmesh = true;
#else
inline constexpr bool kExpectLibmesh = false;
#endif

inline constexpr size_t kKiB = 1024, kMiB = 1024 * kKiB, kGiB = 1024 * kMiB, kTiB = 1024 * kGiB;
extern const size_t kPage;  // the system page size

// Sizes no allocator can satisfy; several sit just below SIZE_MAX so that rounding up to an
// alignment, a size class or a page overflows when done naively.
std::vector<size_t> ImpossibleSizes();

// The extension API of the running allocator, resolved with dlsym(RTLD_DEFAULT, ...).
struct MeshApi {
  int (*get_stats)(mesh_stats*);
  size_t (*stats_json)(char*, size_t);
  void (*print_stats)(int, int);
  int (*set_option)(const char*, long);
  int (*get_option)(const char*, long*);
  size_t (*compact)();
  size_t (*release_free_memory)();
};

// nullptr when mesh_get_stats is not resolvable (glibc run); otherwise every pointer that
// resolved (missing ones are nullptr, and a test of that function fails).
const MeshApi* Mesh();
inline bool HaveLibmesh() { return Mesh() != nullptr; }

// Snapshot of the statistics; all zero without libmesh.
mesh_stats Stats();

constexpr size_t kObj = 48;  // a class that meshes (< 4 KiB)

// A fragmented heap: n objects of `size` bytes, about 1 in 10 kept, each filled with its index
// (so that kept objects of neighbouring spans rarely overlap and mesh well).
struct Fragmented {
  std::vector<unsigned char*> live;
  size_t size;
  explicit Fragmented(size_t n, uint64_t seed = 1, size_t objSize = kObj);
  ~Fragmented();
  Fragmented(const Fragmented&) = delete;
  Fragmented& operator=(const Fragmented&) = delete;
  bool intact() const;
};

// Hides a value from the optimiser (no compile-time size warnings, no folding).
inline size_t Opaque(size_t n) {
  asm volatile("" : "+r"(n));
  return n;
}
template <class T>
inline T* OpaquePtr(T* p) {
  asm volatile("" : "+r"(p));
  return p;
}
// Makes a pointer escape so that a malloc/free pair cannot be elided.
inline void Sink(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

// Position- and seed-dependent byte pattern (harness/pattern.h); nearby seeds give unrelated
// patterns.
inline uint64_t PatternSeed(uint64_t seed) { return harness::mix64(seed + harness::kGolden); }
inline void FillPattern(void* p, size_t n, uint64_t seed) {
  harness::fill_pattern(p, 0, n, PatternSeed(seed));
}
// Index of the first byte that differs from the pattern, or SIZE_MAX when all match.
inline size_t FindPatternMismatch(const void* p, size_t n, uint64_t seed) {
  size_t bad = harness::find_pattern_mismatch(p, 0, n, PatternSeed(seed));
  return bad == n ? SIZE_MAX : bad;
}
inline bool CheckPattern(const void* p, size_t n, uint64_t seed) {
  return FindPatternMismatch(p, n, seed) == SIZE_MAX;
}
inline bool AllBytesAre(const void* p, size_t n, unsigned char c) {
  return harness::find_byte_mismatch(p, 0, n, c) == n;
}

inline bool IsAligned(const void* p, size_t a) {
  return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0;
}

// Result of a child process (forked function or executed program).
struct ChildResult {
  bool timed_out = false;
  int status = 0;      // as from waitpid
  std::string output;  // stdout and stderr, interleaved
  bool Exited(int code) const;
  bool Signaled(int sig) const;
  std::string Describe() const;  // for failure messages
};

// Forks; the child sends stdout+stderr into a pipe, runs body and _exit()s with its result.
// The child is killed after timeout_ms. In the body use CHILD_CHECK, not gtest assertions.
ChildResult RunInChild(const std::function<int()>& body, int timeout_ms);

// fork+execve of argv[0] (a path) with the current environment plus extra_env ("K=V"; "-K"
// removes K, so that a child runs with a default whatever the suite's environment says),
// before_exec run in the child just before exec.
ChildResult RunProgram(const std::vector<std::string>& argv, int timeout_ms,
                       const std::vector<std::string>& extra_env = {},
                       const std::function<void()>& before_exec = {});

// waitpid with a timeout; false (child still running) on timeout.
bool WaitPidTimeout(pid_t pid, int* status, int timeout_ms);

// Absolute path of an executable found in PATH, or "" when missing.
std::string FindInPath(const char* name);

// Resident set size of this process in bytes (from /proc/self/statm).
size_t CurrentRssBytes();

// Regular expression (POSIX ERE) matching "%p" of the address with optional leading zeros.
std::string AddrRegex(const void* p);

// Runs fn with stderr redirected into a temporary file and returns what was written.
std::string CaptureStderr(const std::function<void()>& fn);

// Whether this machine lets libmesh's write-protection service run (meshing/write_protect.h):
// root (CAP_SYS_PTRACE, for kernel faults) on Linux 5.19 or later, MESH_UFFD not 0. Tests then
// require it instead of accepting the mprotect fallback.
bool UffdExpected();

}  // namespace mesh_api_test

// Inside RunInChild bodies: report and return an exit code when cond is false.
#define CHILD_CHECK(cond, code)                                                        \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "child check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      return (code);                                                                   \
    }                                                                                  \
  } while (0)

// Skips (glibc run) or fails (libmesh run where libmesh did not load) a libmesh-only test.
#define MESH_REQUIRE_LIBMESH()                                                               \
  do {                                                                                       \
    if (!::mesh_api_test::HaveLibmesh()) {                                                   \
      if (::mesh_api_test::kExpectLibmesh) {                                                 \
        FAIL() << "libmesh is not the process allocator (mesh_get_stats not found)";        \
      } else {                                                                               \
        GTEST_SKIP() << "libmesh-only check; this build runs against glibc";                 \
      }                                                                                      \
    }                                                                                        \
  } while (0)

#endif  // MESH_TESTS_API_API_TEST_UTIL_H
