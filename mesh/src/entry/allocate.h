// The process's environment for the Frontend (frontend/frontend.h): the process-wide heap, this
// thread's heap in TLS, the reentrancy marks, the start-up buffer and the pacing of meshing. The
// C entry points and the C++ operators call the wrappers at the end.
#pragma once

#include <atomic>
#include <cstddef>

#include "common/compiler.h"
#include "entry/runtime.h"
#include "frontend/frontend.h"

namespace mesh {

// Counts `frees` frees that reached the spans (a large block counts by its pages, up to 256)
// and, about every 256th, lets the background thread start or runs a rate-limited mesh step and
// decay pass itself (the caller is in a locked section).
void maybeMeshFromFreePath(uint32_t frees);

// The fast paths' cache mark. The thread cache is not reentrant: a signal handler that
// allocates or frees while this thread is inside tryAlloc() or tryPushFreed() must not touch
// it. Clearing t_thread.fast marks those few instructions (a plain thread-local store, no
// atomic); a nested call sees nullptr and takes a path that does not use the cache
// (cacheBusy()). th is what t_thread.fast held, so the caller has established that the cache was
// usable.
class FastPathMark {
 public:
  MESH_FAST_PATH explicit FastPathMark(ThreadHeap* th) : th_(th) {
    t_thread.fast = nullptr;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  // False while the background thread returns this thread's cache (ThreadState::claimed): the
  // caller then leaves the cache alone and takes a path through a locked section, which waits.
  // (Tested here rather than waited for, so that the fast paths call nothing.)
  MESH_FAST_PATH bool usable() const {
#if defined(__x86_64__)
    // One compare with memory (the compiler would load into a register and test it).
    bool claimed;
    asm("cmpl $0, %1" : "=@ccne"(claimed) : "m"(t_thread.claimed));
    return !claimed;
#else
    return t_thread.claimed == 0;
#endif
  }
  MESH_FAST_PATH ~FastPathMark() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_thread.fast = th_;
  }

 private:
  ThreadHeap* th_;
};

struct ProcessEnv {
  using LockedSection = DepthGuard;
  using FastMark = FastPathMark;

  static GlobalHeap& heap() { return runtime().heap; }
  static ThreadHeap* cacheHeap() { return t_thread.fast; }
  static ThreadHeap* threadHeap() { return t_thread.heap; }
  static ThreadHeap* refillHeap() { return currentThreadHeapSlow(); }
  static ThreadHeap* adoptHeapForFree(const void* p);
  static bool cacheBusy() { return mesh::cacheBusy(); }
  static bool nested() { return lockedSection(); }
  // Start-up, or nested in a section of ours that may hold locks (a signal handler).
  static bool early(void** result, size_t n, size_t align) {
    if (MESH_LIKELY(!lockedSection() && ensureInitialized())) return false;
    *result = allocateEarly(n, align);
    return true;
  }
  static void* allocateEarly(size_t n, size_t align);
  static bool isForeign(const void* p) { return bootstrap().contains(p); }
  static void releaseForeign(void* p) { bootstrap().release(p); }
  static size_t foreignUsableSize(const void* p) { return bootstrap().usableSize(p); }
  static void afterFrees(uint32_t n) { maybeMeshFromFreePath(n); }
  static void countShared(bool alloc, size_t bytes) { countInSharedCounters(alloc, bytes); }
};

extern template class Frontend<ProcessEnv>;
using ProcessFrontend = Frontend<ProcessEnv>;
// The process's front end (it has no state: everything is in the runtime and TLS).
inline ProcessFrontend frontend() { return ProcessFrontend(); }

MESH_FAST_PATH void* allocate(size_t n) { return frontend().allocate(n); }
MESH_FAST_PATH void deallocate(void* p) { frontend().deallocate(p); }
inline void* allocateAligned(size_t n, size_t align) { return frontend().allocateAligned(n, align); }
inline void* allocateZeroed(size_t count, size_t size) { return frontend().allocateZeroed(count, size); }
inline void* reallocate(void* p, size_t n) { return frontend().reallocate(p, n); }
inline size_t usableSize(void* p, const char* caller) { return frontend().usableSize(p, caller); }
inline void flushAllFreed(ThreadHeap* th) { frontend().flushAll(th); }
inline bool isPowerOfTwoAlignment(size_t align) { return align != 0 && (align & (align - 1)) == 0; }

}  // namespace mesh
