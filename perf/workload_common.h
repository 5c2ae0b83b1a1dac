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
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace perfw {

// --- command line -------------------------------------------------------------------------------

// Options are all unsigned integers ("--name N" or "--name=N") or flags ("--name"). --help
// prints the usage on stdout and exits 0; anything malformed prints a one-line reason and the
// usage on stderr and exits 2.
class Options {
 public:
  Options(const char* program, const char* summary) : program_(program), summary_(summary) {}

  void number(const char* name, const char* help, uint64_t& target, uint64_t lo, uint64_t hi) {
    entries_.push_back(Entry{name, help, &target, nullptr, lo, hi, target});
  }
  void flag(const char* name, const char* help, bool& target) {
    entries_.push_back(Entry{name, help, nullptr, &target, 0, 0, 0});
  }

  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        print_usage(stdout);
        std::exit(0);
      }
      if (arg.rfind("--", 0) != 0) fail_usage("unexpected argument '" + arg + "'");
      std::string name = arg.substr(2), value;
      bool has_value = false;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        has_value = true;
      }
      Entry* e = find(name);
      if (e == nullptr) fail_usage("unknown option '--" + name + "'");
      if (e->flag != nullptr) {
        if (has_value) fail_usage("--" + name + " takes no value");
        *e->flag = true;
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) fail_usage("--" + name + " needs a value");
        value = argv[++i];
      }
      *e->num = to_number(name, value, e->lo, e->hi);
    }
  }

  [[noreturn]] void fail_usage(const std::string& why) const {
    std::fprintf(stderr, "%s: %s\n", program_, why.c_str());
    print_usage(stderr);
    std::exit(2);
  }

 private:
  struct Entry {
    const char* name;
    const char* help;
    uint64_t* num;
    bool* flag;
    uint64_t lo, hi, def;
  };

  Entry* find(const std::string& name) {
    for (Entry& e : entries_)
      if (name == e.name) return &e;
    return nullptr;
  }

  uint64_t to_number(const std::string& name, const std::string& text, uint64_t lo,
                     uint64_t hi) const {
    bool digits = !text.empty() && std::all_of(text.begin(), text.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
    errno = 0;
    unsigned long long v = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
    if (!digits || errno == ERANGE || v < lo || v > hi) {
      fail_usage("--" + name + " needs an integer in " + std::to_string(lo) + ".." +
                 std::to_string(hi) + ", got '" + text + "'");
    }
    return v;
  }

  void print_usage(FILE* out) const {
    std::fprintf(out, "usage: %s [OPTIONS]\n  %s\n", program_, summary_);
    for (const Entry& e : entries_) {
      if (e.flag != nullptr) {
        std::fprintf(out, "  --%-16s %s\n", e.name, e.help);
      } else {
        std::string left = std::string(e.name) + " N";
        std::fprintf(out, "  --%-16s %s (%" PRIu64 "..%" PRIu64 ", default %" PRIu64 ")\n",
                     left.c_str(), e.help, e.lo, e.hi, e.def);
      }
    }
    std::fprintf(out, "  --%-16s %s\n", "help", "show this text");
    std::fprintf(out, "Results are printed on stdout as key=value lines.\n");
  }

  const char* program_;
  const char* summary_;
  std::vector<Entry> entries_;
};

// --- randomness and time ------------------------------------------------------------------------

// splitmix64: the same sequence under every allocator for a given seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }

 private:
  uint64_t s_;
};

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

// Reads "Key:   N kB" from /proc/self/smaps_rollup; -1 when unavailable. Uses a stack buffer
// and plain read(2), so measuring does not allocate from the heap being measured.
inline long smaps_rollup_kb(const char* key) {
  int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[4096];
  size_t len = 0;
  ssize_t got;
  while (len < sizeof buf - 1 && (got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
    len += static_cast<size_t>(got);
  close(fd);
  buf[len] = '\0';
  size_t klen = std::strlen(key);
  for (const char* line = buf; *line != '\0';) {
    if (std::strncmp(line, key, klen) == 0 && line[klen] == ':')
      return std::strtol(line + klen + 1, nullptr, 10);
    const char* nl = std::strchr(line, '\n');
    if (nl == nullptr) break;
    line = nl + 1;
  }
  return -1;
}

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
