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

class ThreadHeap {
 public:
  ThreadHeap(GlobalHeap* global, uint64_t seed);
  ThreadHeap(const ThreadHeap&) = delete;
  ThreadHeap& operator=(const ThreadHeap&) = delete;

  // Fast path: true when class cls has a free slot ready (then pop() cannot fail).
  MESH_FAST_PATH bool canPop(int cls) const { return caches_[cls].count != 0; }
  MESH_FAST_PATH void* pop(int cls) {
    ClassCache& c = caches_[cls];
    uint32_t slot = c.slots[--c.count];
    c.mh->setLive(slot);
    c.allocs.store(c.allocs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return c.start + static_cast<size_t>(slot) * c.size;
  }
  // An object of class cls, refilling when needed; nullptr when out of memory.
  MESH_FAST_PATH void* alloc(int cls) { return canPop(cls) ? pop(cls) : allocSlow(cls); }

  // Fast path: frees ptr, an object of mh, a span attached to this heap, at byte offset
  // `offset` inside its span. Aborts on an invalid or double free.
  MESH_FAST_PATH void freeOwned(MiniHeap* mh, size_t offset, void* ptr) {
    uint32_t slot;
    if (MESH_UNLIKELY(!mh->slotForOffset(offset, &slot))) fatalPointer("invalid free of", ptr);
    if (MESH_UNLIKELY(!mh->isLive(slot))) fatalPointer("double free of", ptr);
    mh->clearLive(slot);
    ClassCache& c = caches_[mh->sizeClassIndex()];
    c.slots[c.count++] = static_cast<uint8_t>(slot);
    c.frees.store(c.frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Counts a free of a class-cls object this heap does not own (a remote free).
  void countRemoteFree(int cls) {
    ClassCache& c = caches_[cls];
    c.frees.store(c.frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Counters summed over classes; read by statistics from any thread (racy but atomic).
  struct Totals {
    uint64_t allocs = 0;
    uint64_t frees = 0;
    int64_t bytes = 0;
  };
  Totals totals() const;

  // Gives every attached span back to the global heap (thread exit, fork child cleanup).
  void detachAll();

  ThreadHeap* registryNext = nullptr;
  ThreadHeap* registryPrev = nullptr;

 private:
  // Everything malloc and free touch for one class sits together, counters included.
  // Counters are written only by the owning thread (plain load+store, no lock prefix).
  struct ClassCache {
    MiniHeap* mh = nullptr;
    char* start = nullptr;
    uint32_t size = 0;
    uint32_t count = 0;  // free slots in slots[0, count)
    std::atomic<uint64_t> allocs{0};
    std::atomic<uint64_t> frees{0};
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
