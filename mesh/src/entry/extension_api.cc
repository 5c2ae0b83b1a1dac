// The libmesh extension API (include/mesh/mesh.h).
#include <cerrno>

#include "common/options.h"
#include "entry/allocate.h"
#include "entry/runtime.h"
#include "entry/stats_report.h"
#include "mesh/mesh.h"
#include "meshing/write_protect.h"

using namespace mesh;

extern "C" {

int mesh_get_stats(mesh_stats* out) {
  if (out == nullptr) return EINVAL;
  collectStats(out);
  return 0;
}

size_t mesh_stats_json(char* buf, size_t len) { return statsJson(buf, len); }

void mesh_print_stats(int fd, int level) { printReport(fd, level); }

int mesh_set_option(const char* name, long value) {
  int i = Options::find(name);
  if (i < 0 || !ensureInitialized()) return EINVAL;
  if (!runtime().options.set(static_cast<Opt>(i), value)) return EINVAL;
  if (static_cast<Opt>(i) == Opt::max_map_count) runtime().heap.mesher().setMaxMapCount(value);
  if (static_cast<Opt>(i) == Opt::same_thread_meshing) runtime().heap.mesher().setSameThreadMeshing(value != 0);
  if (static_cast<Opt>(i) == Opt::uffd) wp::setEnabled(value != 0);
  if (static_cast<Opt>(i) == Opt::sparse_pct) runtime().heap.setSparsePct(static_cast<uint32_t>(value));
  return 0;
}

int mesh_get_option(const char* name, long* value) {
  int i = Options::find(name);
  if (i < 0 || value == nullptr || !ensureInitialized()) return EINVAL;
  *value = runtime().options.get(static_cast<Opt>(i));
  return 0;
}

size_t mesh_compact(void) {
  if (!ensureInitialized() || nestedCall()) return 0;
  if (runtime().options.get(Opt::period_ms) == 0) {  // MESH_PERIOD_MS=0: meshing is off
    releaseFreeMemoryForApi();
    return 0;
  }
  size_t meshes;
  startWriteProtectService();  // (not under a lock; it may allocate)
  if (t_thread.heap != nullptr) flushAllFreed(t_thread.heap);  // their objects are free to mesh around
  // On the write-protection service's thread when it runs (see meshing/write_protect.h).
  auto job = [](void* out) {
    DepthGuard depth;
    *static_cast<size_t*>(out) = runtime().heap.meshAll();
  };
  if (!wp::run(job, &meshes)) job(&meshes);
  releaseFreeMemoryForApi();
  return meshes;
}

size_t mesh_release_free_memory(void) { return releaseFreeMemoryForApi(); }

}  // extern "C"
