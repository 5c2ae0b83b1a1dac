// fork_latency: how long fork() takes in a process with a large heap of small objects.
//
// Builds --heap-mb MiB of live objects (random sizes in [--min-size, --max-size], every byte
// written, chained through their first word), then --iterations times: fork(), the child calls
// _exit(0) at once (or first mallocs and frees one object with --child-malloc), the parent
// waits for it with waitpid(). An allocator that has to copy or remap its heap for the child
// pays here in proportion to the heap (libmesh did until its heap became private anonymous
// memory; now only meshed spans, kept in a shared memfd, are copied); the others only pay the
// kernel's page-table copy.
//
// Output (stdout, key=value):
//   malloc_from objects heap_bytes build_s pss_kb
//   fork_ms_median      time until fork() returned in the parent (the parent's pause)
//   roundtrip_ms_median fork() + the child's exit + waitpid(); also _min and _max
//   fork_ms roundtrip_ms  every iteration, comma-separated
#include <sys/wait.h>

#include "workload_common.h"

namespace {

constexpr const char* kProgram = "fork_latency";

struct Config {
  uint64_t heap_mb = 1024;
  uint64_t iterations = 7;
  uint64_t min_size = 16;
  uint64_t max_size = 256;
  uint64_t seed = 42;
  bool child_malloc = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Builds a heap of small objects, then times fork + child exit + waitpid and "
                   "prints the median in milliseconds.");
  o.number("heap-mb", "MiB of live small objects to build first", c.heap_mb, 0, 1 << 20);
  o.number("iterations", "forks to time", c.iterations, 1, 100000);
  o.number("min-size", "smallest object in bytes", c.min_size, 16, 1 << 20);
  o.number("max-size", "largest object in bytes", c.max_size, 16, 1 << 20);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("child-malloc", "the child mallocs and frees one object before _exit", c.child_malloc);
  o.parse(argc, argv);
  if (c.max_size < c.min_size) o.usage_error("--max-size must not be below --min-size");
  return c;
}

std::string joined(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%s%.3f", s.empty() ? "" : ",", x);
    s += buf;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);

  // The heap: objects chained through their first word, newest first.
  perfw::Rng rng(c.seed);
  const uint64_t target = c.heap_mb << 20;
  void* head = nullptr;
  uint64_t objects = 0, bytes = 0;
  double t0 = perfw::now_seconds();
  while (bytes < target) {
    size_t n = rng.between(c.min_size, c.max_size);
    void* p = std::malloc(n);
    if (p == nullptr) perfw::die(kProgram, "malloc returned NULL while building the heap");
    std::memset(p, 0x5a, n);
    *static_cast<void**>(p) = head;
    head = p;
    ++objects;
    bytes += n;
  }
  double build_s = perfw::now_seconds() - t0;
  long pss = perfw::smaps_rollup_kib("Pss");

  std::vector<double> fork_ms, roundtrip_ms;
  fork_ms.reserve(c.iterations);
  roundtrip_ms.reserve(c.iterations);
  for (uint64_t i = 0; i < c.iterations; ++i) {
    double start = perfw::now_seconds();
    pid_t pid = fork();
    if (pid < 0) perfw::die(kProgram, "fork failed");
    if (pid == 0) {
      if (c.child_malloc) {
        void* p = std::malloc(64);
        if (p == nullptr) _exit(3);
        *static_cast<volatile char*>(p) = 1;
        std::free(p);
      }
      _exit(0);
    }
    double forked = perfw::now_seconds();
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) perfw::die(kProgram, "waitpid failed");
    double done = perfw::now_seconds();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "%s: child %d ended with status 0x%x\n", kProgram,
                   static_cast<int>(pid), status);
      return 1;
    }
    fork_ms.push_back((forked - start) * 1e3);
    roundtrip_ms.push_back((done - start) * 1e3);
  }

  // The parent's heap must have come through the forks intact.
  uint64_t walked = 0;
  for (void* p = head; p != nullptr; p = *static_cast<void**>(p)) {
    if (static_cast<const unsigned char*>(p)[sizeof(void*)] != 0x5a)
      perfw::die(kProgram, "heap object corrupted after fork");
    ++walked;
  }
  if (walked != objects) perfw::die(kProgram, "heap chain lost objects after fork");

  auto [lo, hi] = std::minmax_element(roundtrip_ms.begin(), roundtrip_ms.end());
  std::printf("malloc_from=%s\n", origin.c_str());
  std::printf("objects=%" PRIu64 "\nheap_bytes=%" PRIu64 "\n", objects, bytes);
  std::printf("build_s=%.3f\npss_kb=%ld\n", build_s, pss);
  std::printf("iterations=%" PRIu64 "\n", c.iterations);
  std::printf("fork_ms_median=%.3f\n", perfw::median_of(fork_ms));
  std::printf("roundtrip_ms_median=%.3f\n", perfw::median_of(roundtrip_ms));
  std::printf("roundtrip_ms_min=%.3f\nroundtrip_ms_max=%.3f\n", *lo, *hi);
  std::printf("fork_ms=%s\nroundtrip_ms=%s\n", joined(fork_ms).c_str(),
              joined(roundtrip_ms).c_str());
  return 0;
}
