#include "entry/stats_report.h"

#include "entry/allocate.h"

#include <cstring>

#include "common/log.h"
#include "entry/background.h"
#include "entry/runtime.h"
#include "meshing/write_barrier.h"
#include "meshing/write_protect.h"
#include "platform/os.h"

namespace mesh {

void collectStats(mesh_stats* out) {
  std::memset(out, 0, sizeof *out);
  if (!ensureInitialized()) return;
  Runtime& rt = runtime();
  DepthGuard depth;  // takes allocator locks: a nested signal handler must not wait for them
  int64_t bytes = rt.retired.bytes.load(std::memory_order_relaxed);
  uint64_t largeAllocs = 0, largeKept = 0;  // thread caches' share of the large figures
  uint64_t cached = 0;
  uint64_t sparseFrees = rt.retired.sparseFrees.load(std::memory_order_relaxed);
  out->allocs = rt.retired.allocs.load(std::memory_order_relaxed);
  out->frees = rt.retired.frees.load(std::memory_order_relaxed);
  {
    LockGuard guard(rt.registryLock);
    for (ThreadHeap* th = rt.threads; th != nullptr; th = th->registryNext) {
      ThreadHeap::Totals t = th->totals();
      out->allocs += t.allocs;
      out->frees += t.frees;
      bytes += t.bytes;
      largeAllocs += t.largeAllocs;
      largeKept += t.largeKeptBytes;
      cached += t.cachedBytes;
      sparseFrees += t.sparseFrees;
    }
    out->thread_heaps = rt.liveThreadHeaps;
  }
  out->bytes_in_use = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
  HeapStats hs = rt.heap.stats();
  out->large_allocs = hs.largeAllocs + largeAllocs;
  out->large_bytes = hs.largeBytes > largeKept ? hs.largeBytes - largeKept : 0;
  out->mh_alloc_count = hs.mhAllocCount;
  out->mh_free_count = hs.mhFreeCount;
  out->mh_live = hs.mhLive;
  out->mh_hwm = hs.mhHighWater;
  out->arena_bytes = hs.arena.inUseBytes;
  out->arena_reserved = hs.arena.reservedBytes;
  out->dirty_bytes = hs.arena.dirtyBytes;
  out->released_bytes = hs.arena.releasedBytes;
  out->memfd_backed = hs.arena.memfd ? 1 : 0;
  out->mesh_count = hs.meshCount;
  out->meshed_bytes_total = hs.meshedBytesTotal;
  out->meshed_pages = hs.meshedPages;
  out->meshed_pages_hwm = hs.meshedPagesHwm;
  out->mesh_pause_max_ns = hs.meshPauseMaxNs;
  out->mesh_pause_p99_ns = hs.meshPauseP99Ns;
  out->mesh_waits = hs.meshWaits;
  out->mesh_wait_max_ns = hs.meshWaitMaxNs;
  out->mesh_wait_p99_ns = hs.meshWaitP99Ns;
  out->mapping_count = hs.mappingEstimate;
  out->mapping_limit = hs.mappingLimit;
  out->paced_meshes = hs.pacedMeshes;
  out->paced_meshed_bytes = hs.pacedMeshedBytes;
  out->paced_mesh_ns = hs.pacedMeshNs;
  out->decayed_bytes = hs.decayedBytes;
  out->meshable_free_bytes = hs.meshableFreeBytes;
  out->background_thread = background::runningInThisProcess() ? 1 : 0;
  out->kernel_writes_wait = wp::active() ? 1 : 0;
  out->barrier_waits = barrier::retries() + wp::waits();
  out->thread_cache_bytes = cached;
  out->quiet_cache_returns = background::quietCacheReturns();
  out->sparse_frees = sparseFrees;
}

// One report line "label:   <bytes in MiB, one decimal>".
static void addMiBLine(LineBuffer& line, const char* label, uint64_t bytes) {
  line.add(label).pad(24).addFixed(bytes * 10 / (1024 * 1024), 1).add('\n');
}

void printReport(int fd, int level) {
  mesh_stats s;
  collectStats(&s);
  LineBuffer line;
  line.add("MESH COUNT:").pad(24).addU(s.mesh_count).add('\n');
  addMiBLine(line, "Meshed MB (total):", s.meshed_bytes_total);
  line.add("Meshed pages HWM:").pad(24).addU(s.meshed_pages_hwm).add('\n');
  addMiBLine(line, "Meshed MB HWM:", s.meshed_pages_hwm * os::kPageSize);
  line.add("MH Alloc Count:").pad(24).addU(s.mh_alloc_count).add('\n');
  line.add("MH Free Count:").pad(24).addU(s.mh_free_count).add('\n');
  line.add("MH High Water Mark:").pad(24).addU(s.mh_hwm).add('\n');
  line.add("Bytes In Use:").pad(24).addU(s.bytes_in_use).add('\n');
  addMiBLine(line, "Arena MB (in use):", s.arena_bytes);
  line.add("PSS KiB:").pad(24).addI(os::pssKiB()).add('\n');
  line.add("Mappings:").pad(24).addI(os::mappingCount()).add('\n');
  line.add("Mesh Pause Max ms:").pad(24).addFixed(s.mesh_pause_max_ns / 1000, 3).add('\n');
  line.add("Mesh Pause p99 ms:").pad(24).addFixed(s.mesh_pause_p99_ns / 1000, 3).add('\n');
  line.add("Mesh Waits:").pad(24).addU(s.mesh_waits).add('\n');
  line.add("Mesh Wait Max ms:").pad(24).addFixed(s.mesh_wait_max_ns / 1000, 3).add('\n');
  line.add("Mesh Wait p99 ms:").pad(24).addFixed(s.mesh_wait_p99_ns / 1000, 3).add('\n');
  line.add("Paced meshes:").pad(24).addU(s.paced_meshes).add('\n');
  addMiBLine(line, "Paced MB meshed:", s.paced_meshed_bytes);
  line.add("Paced mesh ms:").pad(24).addFixed(s.paced_mesh_ns / 1000, 3).add('\n');
  addMiBLine(line, "Meshable free MB:", s.meshable_free_bytes);
  addMiBLine(line, "Released MB:", s.released_bytes);
  addMiBLine(line, "Decayed MB:", s.decayed_bytes);
  addMiBLine(line, "Dirty MB:", s.dirty_bytes);
  addMiBLine(line, "Thread cache MB:", s.thread_cache_bytes);
  line.add("Quiet cache returns:").pad(24).addU(s.quiet_cache_returns).add('\n');
  line.add("Sparse frees:").pad(24).addU(s.sparse_frees).add('\n');
  line.add("Background thread:").pad(24).addU(s.background_thread).add('\n');
  line.add("Barrier waits:").pad(24).addU(s.barrier_waits).add('\n');
  line.add("Kernel writes wait:").pad(24).addU(s.kernel_writes_wait);
  if (const char* why = wp::unavailableReason()) line.add(" (").add(why).add(')');
  line.add('\n');
  line.writeTo(fd);
  if (level < 2 || !ensureInitialized()) return;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    ClassStats cs;
    {
      DepthGuard depth;
      cs = runtime().heap.classStats(cls);
    }
    if (cs.spans == 0) continue;
    line.add("MeshInfo partial class:").addU(static_cast<uint64_t>(cls)).add(", length:");
    line.addU(cs.partialSpans).add(", size:").addU(sizeClass(cls).size).add(", spans:").addU(cs.spans);
    line.add(", occupancy:");
    line.addFixed(cs.capacity == 0 ? 0 : cs.liveObjects * 1000 / cs.capacity, 1).add("%");
    line.add(", meshes:").addU(cs.meshes).add('\n');
    line.writeTo(fd);
  }
}

void printMallocStats(int fd) {
  mesh_stats s;
  collectStats(&s);
  LineBuffer line;
  line.add("Arena 0:\nsystem bytes     = ").addU(s.arena_bytes).add('\n');
  line.add("in use bytes     = ").addU(s.bytes_in_use).add('\n');
  line.add("Total (incl. mmap):\nsystem bytes     = ").addU(s.arena_bytes).add('\n');
  line.add("in use bytes     = ").addU(s.bytes_in_use).add('\n');
  line.add("max mmap regions = 0\nmax mmap bytes   = ").addU(s.large_bytes).add('\n');
  line.writeTo(fd);
}

int writeMallocInfo(FILE* out) {
  mesh_stats s;
  collectStats(&s);
  fprintf(out, "<malloc version=\"libmesh-1\">\n");
#define MESH_STAT(name, label, doc) \
  fprintf(out, "  <stat name=\"%s\" value=\"%llu\"/>\n", #name, static_cast<unsigned long long>(s.name));
#include "mesh/stats_fields.def"
#undef MESH_STAT
  fprintf(out, "</malloc>\n");
  return 0;
}

struct mallinfo2 mallinfoFromStats() {
  mesh_stats s;
  collectStats(&s);
  struct mallinfo2 m {};
  m.arena = s.arena_bytes - s.large_bytes;
  m.ordblks = s.mh_live;
  m.hblks = s.large_allocs;
  m.hblkhd = s.large_bytes;
  m.uordblks = s.bytes_in_use;
  m.fordblks = s.arena_bytes > s.bytes_in_use ? s.arena_bytes - s.bytes_in_use : 0;
  m.keepcost = s.dirty_bytes;
  return m;
}

size_t releaseFreeMemoryForApi() {
  if (!ensureInitialized() || nestedCall()) return 0;
  if (t_thread.heap != nullptr) flushAllFreed(t_thread.heap);
  DepthGuard depth;
  return runtime().heap.releaseFreeMemory();
}

size_t statsJson(char* buf, size_t len) {
  mesh_stats s;
  collectStats(&s);
  LineBuffer line;
  line.add('{');
  bool first = true;
#define MESH_STAT(name, label, doc)          \
  line.add(first ? "\"" : ",\"").add(#name); \
  line.add("\":").addU(s.name);              \
  first = false;
#include "mesh/stats_fields.def"
#undef MESH_STAT
  line.add('}');
  size_t need = line.size();
  if (len > 0) {
    size_t n = need < len - 1 ? need : len - 1;
    std::memcpy(buf, line.data(), n);
    buf[n] = '\0';
  }
  return need;
}

// MALLOCSTATS=1|2: the report at exit.
__attribute__((destructor)) static void reportAtExit() {
  Runtime& rt = runtime();
  if (rt.initState.load(std::memory_order_acquire) != 2) return;
  long level = rt.options.get(Opt::stats);
  if (level > 0) printReport(2, static_cast<int>(level));
}

}  // namespace mesh
