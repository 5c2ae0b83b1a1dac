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

// Slow paths (entry/allocate.cc).
MESH_SLOW_PATH void* allocateSlow(size_t n, size_t align, bool* zeroed);
MESH_SLOW_PATH void freeSlow(void* p);
// Counts `frees` slow frees and, about every 256th, runs a rate-limited mesh step (the caller
// holds a DepthGuard).
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
MESH_SLOW_PATH void* mallocSlow(size_t n);

// Fast path: n bytes aligned to 16 (or nullptr with errno ENOMEM).
// The thread cache is not reentrant: a signal handler that allocates or frees while this thread
// is inside tryAlloc() or tryFreeOwned() must not touch it. Bit 0 of t_thread.busy marks those few
// instructions (a plain thread-local store, no atomic); a nested call sees it and takes a path
// that does not use the cache (see allocateSlow and freeSlow).
class FastPathMark {
 public:
  MESH_FAST_PATH FastPathMark() {
    t_thread.busy = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  MESH_FAST_PATH ~FastPathMark() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_thread.busy = 0;
  }
};

MESH_FAST_PATH void* allocate(size_t n) {
  ThreadHeap* th = t_thread.heap;
  if (MESH_LIKELY(n <= kMaxSmallSize && th != nullptr && t_thread.busy == 0)) {
    // Mark first, then look at the cache: a handler running before the mark has finished
    // with the cache by the time we read it.
    FastPathMark mark;
    void* p = th->tryAlloc(classForSize(n));
    if (MESH_LIKELY(p != nullptr)) return p;
  }
  return mallocSlow(n);
}

// Fast path free: an object of a span attached to this thread, or a small object of another
// span, which goes on the thread's freed stack (ThreadHeap::pushFreed). Class and slot read here
// can be stale only for a pointer that is not live; the batch checks them under the lock.
// Anything unusual (stack full, interior pointer, large object, misuse) takes the slow path,
// which reports misuse.
MESH_FAST_PATH void deallocate(void* p) {
  ThreadHeap* th = t_thread.heap;
  const Arena& arena = runtime().heap.arena();
  size_t x = arena.offsetOf(p);
  if (MESH_LIKELY(th != nullptr && x < arena.reservedBytes() && t_thread.busy == 0)) {
    bool done = false;
    {
      FastPathMark mark;
      uintptr_t entry = arena.mapEntry(x >> os::kPageShift);
      MiniHeap* mh = entryMiniHeap(entry);
      // Offset inside the span: offset in the page plus the page's index in the span.
      size_t offset = (x & (os::kPageSize - 1)) + (entryPageInSpan(entry) << os::kPageShift);
      if (MESH_LIKELY(mh != nullptr)) {
        if (MESH_LIKELY(mh->owner() == th)) {
          done = th->tryFreeOwned(mh, offset, p);
        } else {
          int cls = mh->sizeClassIndex();
          uint32_t slot;
          done = cls < kNumClasses && mh->slotForOffset(offset, &slot) && th->tryPushFreed(cls, mh, slot, p);
        }
      }
    }
    if (MESH_LIKELY(done)) return;
  }
  freeSlow(p);
}

}  // namespace mesh
