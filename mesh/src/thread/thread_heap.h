// ThreadHeap: the per-thread cache. For each size class it owns at most one attached span and
// an array of that span's free slots in random order. malloc pops a slot, free of an object of
// an attached span pushes it back: no locks, no atomic read-modify-write. Frees from other
// threads arrive through the span's remote bitmap and are folded in when the array runs dry.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/compiler.h"
#include "common/log.h"
#include "common/rng.h"
#include "global/global_heap.h"
#include "miniheap/miniheap.h"
#include "miniheap/size_classes.h"

namespace mesh {

// Per-thread counters, written only by the owning thread (plain load+store), read by stats.
struct ThreadCounters {
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> frees{0};
  std::atomic<int64_t> bytes{0};  // bytes allocated minus bytes freed by this thread

  void countAlloc(size_t n) {
    allocs.store(allocs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    bytes.store(bytes.load(std::memory_order_relaxed) + static_cast<int64_t>(n), std::memory_order_relaxed);
  }
  void countFree(size_t n) {
    frees.store(frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    bytes.store(bytes.load(std::memory_order_relaxed) - static_cast<int64_t>(n), std::memory_order_relaxed);
  }
};

class ThreadHeap {
 public:
  ThreadHeap(GlobalHeap* global, uint64_t seed);
  ThreadHeap(const ThreadHeap&) = delete;
  ThreadHeap& operator=(const ThreadHeap&) = delete;

  // Fast path: an object of class cls, or nullptr when out of memory.
  MESH_FAST_PATH void* alloc(int cls) {
    ClassCache& c = caches_[cls];
    if (MESH_LIKELY(c.count != 0)) {
      uint32_t slot = c.slots[--c.count];
      c.mh->setLive(slot);
      counters.countAlloc(c.size);
      return c.start + static_cast<size_t>(slot) * c.size;
    }
    return allocSlow(cls);
  }

  // Fast path: frees ptr, an object of mh, a span attached to this heap; spanStart is the start
  // of the virtual span holding ptr. Aborts on an invalid or double free.
  MESH_FAST_PATH void freeOwned(MiniHeap* mh, char* spanStart, void* ptr) {
    uint32_t slot;
    if (MESH_UNLIKELY(!mh->slotForOffset(static_cast<size_t>(static_cast<char*>(ptr) - spanStart), &slot)))
      fatalPointer("invalid free of", ptr);
    if (MESH_UNLIKELY(!mh->isLive(slot))) fatalPointer("double free of", ptr);
    mh->clearLive(slot);
    ClassCache& c = caches_[mh->sizeClassIndex()];
    c.slots[c.count++] = static_cast<uint8_t>(slot);
    counters.countFree(c.size);
  }

  // Gives every attached span back to the global heap (thread exit, fork child cleanup).
  void detachAll();

  ThreadCounters counters;
  ThreadHeap* registryNext = nullptr;
  ThreadHeap* registryPrev = nullptr;

 private:
  struct ClassCache {
    MiniHeap* mh = nullptr;
    char* start = nullptr;
    uint32_t size = 0;
    uint32_t count = 0;  // free slots in slots[0, count)
    uint8_t slots[kMaxObjectsPerSpan];
  };

  MESH_SLOW_PATH void* allocSlow(int cls);
  bool refill(int cls);
  void shuffleTail(ClassCache& c, uint32_t from);

  GlobalHeap* global_;
  Rng rng_;
  ClassCache caches_[kNumClasses];
};

}  // namespace mesh
