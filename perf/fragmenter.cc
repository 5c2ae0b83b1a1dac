// fragmenter: how much memory an allocator keeps after most of a small-object heap dies.
//
// Allocates --mb MiB (requested bytes) of objects of random sizes in [--min-size, --max-size],
// writing every byte, then frees a random --free-pct percent of them, scattered over the whole
// heap. With --threads N, N threads each allocate and then free their share (they stay alive,
// each with its own thread cache, until the figures are taken). The survivors pin down pages an ordinary allocator cannot return; a compacting one can.
// Then it asks the allocator to give memory back - mesh_compact() when libmesh is loaded (found
// with dlsym), malloc_trim(0) otherwise - waits --settle-ms for background purging, and reports
// the process's PSS (the true footprint; RSS would count a meshed page once per mapping).
//
// Output (stdout, key=value):
//   malloc_from       file malloc resolved into
//   objects survivors allocated_bytes live_bytes
//   baseline_pss_kb   PSS before the heap was built (program, libraries, allocator start-up)
//   full_pss_kb       PSS with every object alive
//   compact           mesh_compact, malloc_trim or none (--no-compact)
//   compact_ms        time the compaction call took; meshes = what mesh_compact returned
//   pss_kb rss_kb     after the settle time
//   heap_pss_kb       pss_kb - baseline_pss_kb
//   pss_per_live      pss_kb * 1024 / live_bytes (1.0 would be a perfect allocator and no code)
//   heap_pss_per_live heap_pss_kb * 1024 / live_bytes
//   maps              lines of /proc/self/maps
//   mesh_count mesh_pause_max_ns mesh_pause_p99_ns meshed_bytes_total   (only under libmesh)
#include <malloc.h>
#include <sys/mman.h>

#include <barrier>
#include <thread>
#include <vector>

#include "workload_common.h"

namespace {

constexpr const char* kProgram = "fragmenter";

struct Config {
  uint64_t mb = 256;
  uint64_t min_size = 16;
  uint64_t max_size = 512;
  uint64_t free_pct = 90;
  uint64_t settle_ms = 1000;
  uint64_t seed = 42;
  bool no_compact = false;
  uint64_t threads = 1;
  bool mesh_stats = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Builds a heap of small objects, frees a random share, compacts, settles and "
                   "prints the remaining PSS.");
  o.number("mb", "MiB of objects to allocate (requested bytes)", c.mb, 1, 1 << 20);
  o.number("min-size", "smallest object in bytes", c.min_size, 8, 1 << 20);
  o.number("max-size", "largest object in bytes", c.max_size, 8, 1 << 20);
  o.number("free-pct", "percent of the objects freed, chosen at random", c.free_pct, 0, 100);
  o.number("settle-ms", "wait after compacting, in milliseconds", c.settle_ms, 0, 600000);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("no-compact", "call neither mesh_compact nor malloc_trim", c.no_compact);
  o.number("threads", "threads that allocate and free (each its share of --mb)", c.threads, 1, 256);
  o.flag("mesh-stats", "after settling, print libmesh's per-class report to stderr",
         c.mesh_stats);
  o.parse(argc, argv);
  if (c.max_size < c.min_size) o.usage_error("--max-size must not be below --min-size");
  return c;
}

// One thread's share of the heap: its part of the tables, its random sequence and its figures.
struct Share {
  void** table;
  uint32_t* sizes;
  uint64_t target;
  perfw::Rng rng;
  uint64_t objects = 0, allocated = 0, survivors = 0, live = 0;
};

void allocate_share(const Config& c, Share& s) {
  while (s.allocated < s.target) {
    size_t n = s.rng.between(c.min_size, c.max_size);
    void* p = std::malloc(n);
    if (p == nullptr) perfw::die(kProgram, "malloc returned NULL");
    std::memset(p, static_cast<int>(s.objects & 0xff), n);
    s.table[s.objects] = p;
    s.sizes[s.objects] = static_cast<uint32_t>(n);
    ++s.objects;
    s.allocated += n;
  }
}

// Frees a random share; the survivors move to the front of the share's tables.
void free_share(const Config& c, Share& s) {
  for (uint64_t i = 0; i < s.objects; ++i) {
    if (s.rng.below(100) < c.free_pct) {
      std::free(s.table[i]);
    } else {
      s.table[s.survivors] = s.table[i];
      s.sizes[s.survivors] = s.sizes[i];
      s.live += s.sizes[i];
      ++s.survivors;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  const uint64_t target = c.mb << 20;
  const uint64_t per_thread = target / c.threads;
  const uint64_t capacity = per_thread / c.min_size + 2;  // table entries per share
  const uint64_t max_objects = capacity * c.threads + target % c.threads / c.min_size + 1;

  // The pointer table lives outside the heap under test so it does not count as the
  // allocator's memory, and pages of it that are no longer needed are dropped explicitly.
  size_t table_bytes = max_objects * sizeof(void*);
  auto** table = static_cast<void**>(mmap(nullptr, table_bytes, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (table == MAP_FAILED) perfw::die(kProgram, "cannot map the pointer table");
  auto* sizes = static_cast<uint32_t*>(mmap(nullptr, max_objects * sizeof(uint32_t),
                                            PROT_READ | PROT_WRITE,
                                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (sizes == MAP_FAILED) perfw::die(kProgram, "cannot map the size table");

  std::string origin = perfw::checked_malloc_origin(kProgram);
  long baseline_pss = perfw::smaps_rollup_kib("Pss");

  // Share k owns the tables from k * capacity on (the last one also takes the remainder of the
  // target); share 0 uses --seed itself, so one thread gives exactly the single-threaded run.
  std::vector<Share> shares;
  for (uint64_t k = 0; k < c.threads; ++k) {
    uint64_t t = k + 1 == c.threads ? target - per_thread * k : per_thread;
    shares.push_back(Share{table + k * capacity, sizes + k * capacity, t, perfw::Rng(c.seed + k)});
  }
  long full_pss = 0;
  if (c.threads == 1) {
    allocate_share(c, shares[0]);
    full_pss = perfw::smaps_rollup_kib("Pss");
    free_share(c, shares[0]);
  }
  // Worker threads: allocate | main measures | free | main compacts and measures | exit.
  std::barrier sync(static_cast<std::ptrdiff_t>(c.threads > 1 ? c.threads + 1 : 1));
  std::vector<std::thread> workers;
  for (uint64_t k = 0; c.threads > 1 && k < c.threads; ++k) {
    workers.emplace_back([&c, &sync, &s = shares[k]] {
      allocate_share(c, s);
      sync.arrive_and_wait();
      sync.arrive_and_wait();
      free_share(c, s);
      sync.arrive_and_wait();
      sync.arrive_and_wait();
    });
  }
  if (c.threads > 1) {
    sync.arrive_and_wait();
    full_pss = perfw::smaps_rollup_kib("Pss");
    sync.arrive_and_wait();
    sync.arrive_and_wait();
  }
  uint64_t objects = 0, allocated = 0, survivors = 0, live = 0;
  for (Share& s : shares) {
    // Survivors move to the front of the whole table (never past their own share's start).
    std::memmove(table + survivors, s.table, s.survivors * sizeof(void*));
    std::memmove(sizes + survivors, s.sizes, s.survivors * sizeof(uint32_t));
    objects += s.objects;
    allocated += s.allocated;
    survivors += s.survivors;
    live += s.live;
  }
  auto drop_tail = [](void* base, size_t used_bytes, size_t total_bytes) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t keep = (used_bytes + page - 1) / page * page;
    if (keep < total_bytes)
      madvise(static_cast<char*>(base) + keep, total_bytes - keep, MADV_DONTNEED);
  };
  drop_tail(table, survivors * sizeof(void*), table_bytes);
  drop_tail(sizes, survivors * sizeof(uint32_t), max_objects * sizeof(uint32_t));

  const char* how = "none";
  long long meshes = -1;
  double t0 = perfw::now_seconds();
  if (!c.no_compact) {
    using CompactFn = size_t (*)();
    auto compact = reinterpret_cast<CompactFn>(dlsym(RTLD_DEFAULT, "mesh_compact"));
    if (compact != nullptr) {
      how = "mesh_compact";
      meshes = static_cast<long long>(compact());
    } else {
      how = "malloc_trim";
      malloc_trim(0);
    }
  }
  double compact_ms = (perfw::now_seconds() - t0) * 1e3;
  std::this_thread::sleep_for(std::chrono::milliseconds(c.settle_ms));

  if (c.mesh_stats) {
    using PrintFn = void (*)(int, int);
    auto print = reinterpret_cast<PrintFn>(dlsym(RTLD_DEFAULT, "mesh_print_stats"));
    if (print != nullptr) print(2, 2);
  }
  long pss = perfw::smaps_rollup_kib("Pss");
  long rss = perfw::smaps_rollup_kib("Rss");
  long maps = perfw::mapping_count();
  perfw::MeshFacts mesh;
  bool have_mesh = perfw::mesh_facts(mesh);

  // Every survivor must still hold what was written into it.
  for (uint64_t i = 0; i < survivors; ++i) {
    auto* b = static_cast<const unsigned char*>(table[i]);
    if (b[0] != b[sizes[i] - 1]) perfw::die(kProgram, "a surviving object was corrupted");
  }

  std::printf("malloc_from=%s\n", origin.c_str());
  std::printf("objects=%" PRIu64 "\nsurvivors=%" PRIu64 "\n", objects, survivors);
  std::printf("allocated_bytes=%" PRIu64 "\nlive_bytes=%" PRIu64 "\n", allocated, live);
  std::printf("baseline_pss_kb=%ld\nfull_pss_kb=%ld\n", baseline_pss, full_pss);
  std::printf("compact=%s\ncompact_ms=%.3f\n", how, compact_ms);
  if (meshes >= 0) std::printf("meshes=%lld\n", meshes);
  std::printf("pss_kb=%ld\nrss_kb=%ld\nheap_pss_kb=%ld\n", pss, rss, pss - baseline_pss);
  if (live > 0 && pss >= 0) {
    std::printf("pss_per_live=%.4f\n", static_cast<double>(pss) * 1024.0 / live);
    std::printf("heap_pss_per_live=%.4f\n",
                static_cast<double>(pss - baseline_pss) * 1024.0 / live);
  }
  std::printf("maps=%ld\n", maps);
  if (have_mesh) {
    std::printf("mesh_count=%lld\nmesh_pause_max_ns=%lld\nmesh_pause_p99_ns=%lld\nmeshed_bytes_total=%lld\n",
                mesh.mesh_count, mesh.mesh_pause_max_ns, mesh.mesh_pause_p99_ns, mesh.meshed_bytes_total);
  }
  std::fflush(stdout);
  if (c.threads > 1) sync.arrive_and_wait();
  for (std::thread& w : workers) w.join();

  for (uint64_t i = 0; i < survivors; ++i) std::free(table[i]);
  munmap(table, table_bytes);
  munmap(sizes, max_objects * sizeof(uint32_t));
  return 0;
}
