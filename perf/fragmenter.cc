// fragmenter: how much memory an allocator keeps after most of a small-object heap dies.
//
// Allocates --mb MiB (requested bytes) of objects of random sizes in [--min-size, --max-size],
// writing every byte, then frees a random --free-pct percent of them, scattered over the whole
// heap. The survivors pin down pages an ordinary allocator cannot return; a compacting one can.
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
//   mesh_count mesh_pause_max_ns meshed_bytes_total   (only under libmesh)
#include <malloc.h>
#include <sys/mman.h>

#include <thread>

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
  o.flag("mesh-stats", "after settling, print libmesh's per-class report to stderr",
         c.mesh_stats);
  o.parse(argc, argv);
  if (c.max_size < c.min_size) o.fail_usage("--max-size must not be below --min-size");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  const uint64_t target = c.mb << 20;
  const uint64_t max_objects = target / c.min_size + 1;

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
  long baseline_pss = perfw::smaps_rollup_kb("Pss");

  perfw::Rng rng(c.seed);
  uint64_t objects = 0, allocated = 0;
  while (allocated < target) {
    size_t n = rng.between(c.min_size, c.max_size);
    void* p = std::malloc(n);
    if (p == nullptr) perfw::die(kProgram, "malloc returned NULL");
    std::memset(p, static_cast<int>(objects & 0xff), n);
    table[objects] = p;
    sizes[objects] = static_cast<uint32_t>(n);
    ++objects;
    allocated += n;
  }
  long full_pss = perfw::smaps_rollup_kb("Pss");

  // Free a random share; the survivors move to the front of the tables.
  uint64_t survivors = 0, live = 0;
  for (uint64_t i = 0; i < objects; ++i) {
    if (rng.below(100) < c.free_pct) {
      std::free(table[i]);
    } else {
      table[survivors] = table[i];
      sizes[survivors] = sizes[i];
      live += sizes[i];
      ++survivors;
    }
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
  long pss = perfw::smaps_rollup_kb("Pss");
  long rss = perfw::smaps_rollup_kb("Rss");
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
    std::printf("mesh_count=%lld\nmesh_pause_max_ns=%lld\nmeshed_bytes_total=%lld\n",
                mesh.mesh_count, mesh.mesh_pause_max_ns, mesh.meshed_bytes_total);
  }
  std::fflush(stdout);

  for (uint64_t i = 0; i < survivors; ++i) std::free(table[i]);
  munmap(table, table_bytes);
  munmap(sizes, max_objects * sizeof(uint32_t));
  return 0;
}
