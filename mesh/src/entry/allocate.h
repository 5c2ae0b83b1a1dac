// The allocation and free paths shared by the C entry points and the C++ operators.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>

#include "common/compiler.h"
#include "entry/runtime.h"
#include "miniheap/page_entry.h"
#include "miniheap/size_classes.h"

namespace mesh {

static_assert(kEntryPageShift == os::kPageShift);

// Slow paths (entry/allocate.cc).
MESH_SLOW_PATH void* allocateSlow(size_t n, size_t align, bool* zeroed);
MESH_WARM_PATH void freeSlow(void* p);
// Counts `frees` slow frees (a large block counts by its pages, up to 256) and, about every
// 256th, lets the background thread start or runs a rate-limited mesh step and decay pass
// itself (the caller holds a DepthGuard).
void maybeMeshFromFreePath(uint32_t frees);
// Hands the whole freed-object stack of every class back to the spans (thread exit, trim,
// compaction).
void flushAllFreed(ThreadHeap* th);
// Usable size of a live block; aborts on a pointer that is not one.
size_t usableSize(void* p, const char* caller);
// realloc semantics (C API): may return p itself.
void* reallocate(void* p, size_t n);
// n bytes aligned to align (a power of two).
void* allocateAligned(size_t n, size_t align);
// calloc: zeroed memory for count*size bytes, ENOMEM on overflow. Fresh pages are not written.
void* allocateZeroed(size_t count, size_t size);
bool isPowerOfTwoAlignment(size_t align);

// malloc's slow path: everything but "this thread's cache has a slot of the right class".
MESH_WARM_PATH void* mallocSlow(size_t n);

// Fast path: n bytes aligned to 16 (or nullptr with errno ENOMEM).
// The thread cache is not reentrant: a signal handler that allocates or frees while this thread
// is inside tryAlloc() or tryPushFreed() must not touch it. Clearing t_thread.fast marks those
// few instructions (a plain thread-local store, no atomic); a nested call sees nullptr and takes
// a path that does not use the cache (cacheBusy(), see allocateSlow and freeSlow). th is what
// t_thread.fast held, so the caller has established that the cache was usable.
class FastPathMark {
 public:
  MESH_FAST_PATH explicit FastPathMark(ThreadHeap* th) : th_(th) {
    t_thread.fast = nullptr;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  MESH_FAST_PATH ~FastPathMark() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_thread.fast = th_;
  }

 private:
  ThreadHeap* th_;
};

MESH_FAST_PATH void* allocate(size_t n) {
  ThreadHeap* th = t_thread.fast;
  if (MESH_LIKELY(n <= kMaxSmallSize && th != nullptr)) {
    // Mark first, then look at the cache: a handler running before the mark has finished
    // with the cache by the time we read it.
    FastPathMark mark(th);
    void* p = th->tryAllocLine(classLineForSize(n));
    if (MESH_LIKELY(p != nullptr)) return p;
  }
  return mallocSlow(n);
}

// Fast path free: a small object goes on the thread's freed stack of its class
// (ThreadHeap::tryPushFreed), whichever span it is in. Class and slot read here can be stale
// only for a pointer that is not live; the batch checks them under the lock. Anything unusual
// (stack full, interior pointer, large object, misuse) takes the slow path, which reports
// misuse.
MESH_FAST_PATH void deallocate(void* p) {
  ThreadHeap* th = t_thread.fast;
  const Arena& arena = runtime().heap.arena();
  size_t x = arena.offsetOf(p);
  // The page map's fixed bound, not the (growing) range: an entry past the range reads as 0.
  if (MESH_LIKELY(th != nullptr && x < arena.mappedBoundBytes())) {
    bool done = false;
    {
      FastPathMark mark(th);
      uintptr_t entry = arena.mapEntry(x >> os::kPageShift);
      MiniHeap* mh = entryMiniHeap(entry);
      if (MESH_LIKELY(mh != nullptr)) {
        // Offset inside the span: offset in the page plus the page's offset in the span.
        size_t offset = (x & (os::kPageSize - 1)) | entryOffsetInSpan(entry);
        size_t slot;
        // (A large object has no slots; tryPushFreed's bitmap test bounds the slot.)
        if (MESH_LIKELY(mh->slotStartForOffset(offset, &slot))) {
          done = th->tryPushFreed(mh, slot, p);
        }
      }
    }
    if (MESH_LIKELY(done)) return;
  }
  freeSlow(p);
}

}  // namespace mesh
