// The allocation and free paths shared by the C entry points and the C++ operators.
#pragma once

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
// Usable size of a live block; aborts on a pointer that is not one.
size_t usableSize(void* p, const char* caller);
// realloc semantics (C API): may return p itself.
void* reallocate(void* p, size_t n);
// n bytes aligned to align (a power of two).
void* allocateAligned(size_t n, size_t align);
// calloc: zeroed memory for count*size bytes, ENOMEM on overflow. Fresh pages are not written.
void* allocateZeroed(size_t count, size_t size);
bool isPowerOfTwoAlignment(size_t align);

// Fast path: n bytes aligned to 16 (or nullptr with errno ENOMEM).
MESH_FAST_PATH void* allocate(size_t n) {
  if (MESH_LIKELY(n <= kMaxSmallSize)) {
    ThreadHeap* th = t_heap;
    if (MESH_LIKELY(th != nullptr)) {
      void* p = th->alloc(classForSize(n));
      if (MESH_LIKELY(p != nullptr)) return p;
    }
  }
  bool zeroed;
  return allocateSlow(n, 16, &zeroed);
}

// Fast path free: an object of a span attached to this thread.
MESH_FAST_PATH void deallocate(void* p) {
  ThreadHeap* th = t_heap;
  GlobalHeap& heap = runtime().heap;
  uintptr_t entry = heap.entryFor(p);
  MiniHeap* mh = entryMiniHeap(entry);
  if (MESH_LIKELY(mh != nullptr && th != nullptr && mh->owner() == th)) {
    th->freeOwned(mh, heap.spanStartFor(p, entry), p);
    return;
  }
  freeSlow(p);
}

}  // namespace mesh
