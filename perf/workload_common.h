// Shared helpers of the perf workload programs (fragmenter, churn, fork_latency).
//
// These programs call only the standard malloc API, like micro-bench, and never link libmesh:
// scripts/run-perf.sh runs each under every allocator through LD_PRELOAD. Results go to stdout
// as machine-readable `key=value` lines; anything for humans goes to stderr.
#ifndef MESH_PERF_WORKLOAD_COMMON_H
#define MESH_PERF_WORKLOAD_COMMON_H

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "harness/cli.h"
#include "harness/pss.h"
#include "harness/rng.h"

namespace perfw {

// --- command line and randomness ---------------------------------------------------------------

// The command line (harness/cli.h: unsigned --options and flags, --help exits 0, a malformed
// command line exits 2), with the note that results come as key=value lines.
class Options : public harness::Cli {
 public:
  Options(const char* program, const char* summary) : harness::Cli(program, summary) {
    epilog("Results are printed on stdout as key=value lines.");
  }
};

// splitmix64 reduced by modulo (harness/rng.h): the same sequence under every allocator for a
// given seed, and the one the checksums and size mixes in results/ were made with.
using Rng = harness::ModuloRng;

// --- time ---------------------------------------------------------------------------------------

inline double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// --- process facts ------------------------------------------------------------------------------

// "Key:   N kB" of /proc/self/smaps_rollup (harness/pss.h); -1 when unavailable. Does not
// allocate from the heap being measured.
using harness::smaps_rollup_kib;

// Lines of /proc/self/maps: the number of mappings (meshing multiplies them).
inline long mapping_count() {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[8192];
  long lines = 0;
  ssize_t got;
  while ((got = read(fd, buf, sizeof buf)) > 0)
    lines += std::count(buf, buf + got, '\n');
  close(fd);
  return lines;
}

// The file that malloc resolves into (to show which allocator is really in use).
inline std::string malloc_origin() {
  Dl_info info{};
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  if (sym == nullptr || dladdr(sym, &info) == 0 || info.dli_fname == nullptr) return "unknown";
  return info.dli_fname;
}

// PERF_EXPECT_MALLOC_FROM=TEXT in the environment: exit with status 3 unless the file malloc
// resolves into contains TEXT (catches an LD_PRELOAD the loader ignored). Returns the file.
inline std::string checked_malloc_origin(const char* program) {
  std::string origin = malloc_origin();
  const char* want = std::getenv("PERF_EXPECT_MALLOC_FROM");
  if (want != nullptr && *want != '\0' && origin.find(want) == std::string::npos) {
    std::fprintf(stderr, "%s: malloc comes from %s, not from %s\n", program, origin.c_str(),
                 want);
    std::exit(3);
  }
  return origin;
}

// Looks for "name": N in a flat JSON object (libmesh's mesh_stats_json); -1 when absent.
inline long long json_field(const char* json, const char* name) {
  std::string needle = std::string("\"") + name + "\"";
  const char* p = std::strstr(json, needle.c_str());
  if (p == nullptr) return -1;
  p += needle.size();
  while (*p == ' ' || *p == ':') ++p;
  if (*p < '0' || *p > '9') return -1;
  return std::strtoll(p, nullptr, 10);
}

// libmesh's statistics if libmesh is the allocator in use (found with dlsym, so the program
// does not depend on it). The JSON form is used rather than the struct so an older or newer
// libmesh with other fields cannot overrun a buffer. Returns false without libmesh.
struct MeshFacts {
  long long mesh_count = -1;
  long long mesh_pause_max_ns = -1;
  long long mesh_pause_p99_ns = -1;  // -1 from a libmesh without the figure
  long long meshed_bytes_total = -1;
};
inline bool mesh_facts(MeshFacts& out) {
  using JsonFn = size_t (*)(char*, size_t);
  auto fn = reinterpret_cast<JsonFn>(dlsym(RTLD_DEFAULT, "mesh_stats_json"));
  if (fn == nullptr) return false;
  static char buf[8192];
  fn(buf, sizeof buf);
  out.mesh_count = json_field(buf, "mesh_count");
  out.mesh_pause_max_ns = json_field(buf, "mesh_pause_max_ns");
  out.mesh_pause_p99_ns = json_field(buf, "mesh_pause_p99_ns");
  out.meshed_bytes_total = json_field(buf, "meshed_bytes_total");
  return true;
}

[[noreturn]] inline void die(const char* program, const char* what) {
  std::fprintf(stderr, "%s: %s\n", program, what);
  std::exit(1);
}

}  // namespace perfw

#endif  // MESH_PERF_WORKLOAD_COMMON_H
