// The process's instance of the Frontend, and the parts of its environment that are not inline.
#include "entry/allocate.h"

#include "entry/background.h"
#include "frontend/frontend_impl.h"

namespace mesh {

template class Frontend<ProcessEnv>;

// Nested in our locked code (a signal handler) or during start-up: never waits for a lock.
void* ProcessEnv::allocateEarly(size_t n, size_t align) {
  void* p = nullptr;
  if (lockedSection() && !t_allocFromBootstrap && n <= kMaxSmallSize && align <= 16 &&
      runtime().initState.load() == 2) {
    // The interrupted code may hold one class's lock: a larger class serves as well.
    for (int cls = classForSize(n); cls < kNumClasses && p == nullptr; ++cls) {
      p = runtime().heap.allocUnattachedNested(cls);
      if (p != nullptr) countInSharedCounters(true, sizeClass(cls).size);
    }
  }
  if (p == nullptr) p = bootstrap().alloc(n, align);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// A thread whose first call is a free (a consumer of objects other threads made) gets its heap
// now, unless the call is nested in our own code or p is not in the arena.
ThreadHeap* ProcessEnv::adoptHeapForFree(const void* p) {
  if (nestedCall() || !runtime().heap.arena().contains(p)) return nullptr;
  {
    DepthGuard depth;
    currentThreadHeapSlow();
  }
  return t_thread.fast;
}

// About every 256th slow free of a thread may run one rate-limited mesh step (MESH_PERIOD_MS)
// and one decay pass (MESH_DECAY_MS), unless the background thread does both.
static __thread uint32_t t_slowFrees __attribute__((tls_model("initial-exec"))) = 0;

void maybeMeshFromFreePath(uint32_t frees) {
  // Only from a free at the top level of our code: never from a signal handler that
  // interrupted the allocator (it could hold the locks meshing takes).
  uint32_t before = t_slowFrees;
  t_slowFrees = before + frees;
  if (t_thread.lockedDepth != 1 || ((before ^ t_slowFrees) & ~255u) == 0) return;
  int onThread = background::onSlowFrees();  // what the background thread does instead
  Runtime& rt = runtime();
  long periodMs = rt.options.get(Opt::period_ms);
  if ((onThread & background::kThreadMeshes) == 0 && periodMs > 0) {
    rt.heap.maybeMesh(static_cast<uint64_t>(periodMs) * 1000000);
  }
  if ((onThread & background::kThreadDecays) == 0) {
    rt.heap.maybeDecay(static_cast<uint64_t>(rt.options.get(Opt::decay_ms)) * 1000000);
  }
}

}  // namespace mesh
