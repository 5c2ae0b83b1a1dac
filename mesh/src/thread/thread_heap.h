// ThreadHeap: the per-thread cache. For each size class it owns at most one attached span and
// an array of that span's free slots in random order. malloc pops a slot, free of an object of
// an attached span pushes it back: no locks, no atomic read-modify-write. Frees from other
// threads arrive through the span's remote bitmap and are folded in when the array runs dry.
// Frees by this thread of objects of other spans go to a per-class stack that malloc serves
// first (see pushFreed).
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

inline constexpr uint32_t kMaxFreedPerClass = 32;

class ThreadHeap {
 public:
  ThreadHeap(GlobalHeap* global, uint64_t seed);
  ThreadHeap(const ThreadHeap&) = delete;
  ThreadHeap& operator=(const ThreadHeap&) = delete;

  // Fast path: true when class cls has a free slot ready (then pop() cannot fail).
  MESH_FAST_PATH bool canPop(int cls) const { return caches_[cls].count != 0; }
  MESH_FAST_PATH void* pop(int cls) {
    ClassCache& c = caches_[cls];
    uint32_t slot = slots_[cls][--c.count];
    c.mh->setLive(slot);
    c.allocs.store(c.allocs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return c.start + static_cast<size_t>(slot) * c.size;
  }
  // An object of class cls, refilling when needed; nullptr when out of memory.
  MESH_FAST_PATH void* alloc(int cls) {
    if (canPopFreed(cls)) return popFreed(cls);
    return canPop(cls) ? pop(cls) : allocSlow(cls);
  }

  // Fast path: frees ptr, an object of mh, a span attached to this heap, at byte offset
  // `offset` inside its span. Aborts on an invalid or double free.
  MESH_FAST_PATH void freeOwned(MiniHeap* mh, size_t offset, void* ptr) {
    uint32_t slot;
    if (MESH_UNLIKELY(!mh->slotForOffset(offset, &slot))) fatalPointer("invalid free of", ptr);
    if (MESH_UNLIKELY(!mh->isLiveUnfreed(slot) || keyWord(ptr) == keyFor(ptr))) reportStackedFree(ptr);
    mh->clearLive(slot);
    int cls = mh->sizeClassIndex();
    ClassCache& c = caches_[cls];
    slots_[cls][c.count++] = static_cast<uint8_t>(slot);
    c.frees.store(c.frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // freeOwned for the fast path: false, changing nothing, when the free is not a plain valid
  // one (the slow path then reports it). No calls, so the caller stays a leaf.
  MESH_FAST_PATH bool tryFreeOwned(MiniHeap* mh, size_t offset, void* ptr) {
    uint32_t slot;
    if (MESH_UNLIKELY(!mh->slotForOffset(offset, &slot) || !mh->isLiveUnfreed(slot) ||
                      keyWord(ptr) == keyFor(ptr))) {
      return false;
    }
    mh->clearLive(slot);
    int cls = mh->sizeClassIndex();
    ClassCache& c = caches_[cls];
    slots_[cls][c.count++] = static_cast<uint8_t>(slot);
    c.frees.store(c.frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }
  // pushFreed for the fast path: false also for a suspected double free (the slow path reports).
  // mh and slot are ptr's miniheap and slot as the caller read them without a lock: a slot
  // already free there means a double free (a racing reader can only miss one, never invent
  // one: the object was allocated before the caller got it).
  MESH_FAST_PATH bool tryPushFreed(int cls, const MiniHeap* mh, uint32_t slot, void* ptr) {
    ClassCache& c = caches_[cls];
    if (MESH_UNLIKELY(keyWord(ptr) == keyFor(ptr) || c.freed == c.freedCap || !mh->isLiveUnfreed(slot))) {
      return false;
    }
    keyWord(ptr) = keyFor(ptr);
    freedPtrs_[cls][c.freed++] = ptr;
    c.frees.store(c.frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }

  // Counts a free of a class-cls object this heap does not own (a remote free).
  void countRemoteFree(int cls) {
    ClassCache& c = caches_[cls];
    c.frees.store(c.frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // --- freed objects of other spans ------------------------------------------------------
  // Frees by this thread of objects whose span it does not hold go to a small per-class stack
  // (LIFO, like a tcache) that malloc serves first. The spans still count those objects as
  // live; when a stack overflows, its older half is handed back to the spans in one locked
  // batch (GlobalHeap::freeBatch). Each stacked object carries a key (word 1, address-salted)
  // so that a second free of it, by any thread, is seen: the same block is never handed out
  // twice. The key is cleared whenever the object leaves a stack.
  MESH_FAST_PATH bool canPopFreed(int cls) const { return caches_[cls].freed != 0; }
  MESH_FAST_PATH void* popFreed(int cls) {
    ClassCache& c = caches_[cls];
    void* p = freedPtrs_[cls][--c.freed];
    keyWord(p) = 0;
    c.allocs.store(c.allocs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return p;
  }
  // Stacks ptr, a freed object of class cls (as read from its miniheap without a lock; the batch
  // checks it). False when the stack is full: flushFreed first. Aborts on a detected double free.
  MESH_FAST_PATH bool pushFreed(int cls, void* ptr) {
    ClassCache& c = caches_[cls];
    if (MESH_UNLIKELY(keyWord(ptr) == keyFor(ptr))) reportStackedFree(ptr);
    if (MESH_UNLIKELY(c.freed == c.freedCap)) return false;
    keyWord(ptr) = keyFor(ptr);
    freedPtrs_[cls][c.freed++] = ptr;
    c.frees.store(c.frees.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }
  // Hands the older half of class cls's stack (all of it with all=true) back to the spans.
  // Pointers the batch rejects (misuse to report) are passed to onRejected after the class lock
  // was released. Returns the number of objects handed back.
  template <typename F>
  uint32_t flushFreed(int cls, bool all, F&& onRejected) {
    ClassCache& c = caches_[cls];
    uint32_t n = all ? c.freed : (c.freed + 1) / 2;
    if (n == 0) return 0;
    void* batch[kMaxFreedPerClass];
    for (uint32_t i = 0; i < n; ++i) {
      batch[i] = freedPtrs_[cls][i];
      keyWord(batch[i]) = 0;
    }
    for (uint32_t i = n; i < c.freed; ++i) freedPtrs_[cls][i - n] = freedPtrs_[cls][i];
    c.freed -= n;
    uint32_t rejected = global_->freeBatch(cls, batch, n);
    for (uint32_t i = 0; i < rejected; ++i) onRejected(batch[i]);
    return n;
  }
  uint32_t freedCount(int cls) const { return caches_[cls].freed; }
  uint32_t freedCapacity(int cls) const { return caches_[cls].freedCap; }
  // Forgets the stacks (a fork child cleaning up another thread's heap, whose stacks may have
  // been mid-update at the fork: those objects stay allocated).
  void dropFreed() {
    for (ClassCache& c : caches_) c.freed = 0;
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
  // What malloc and free read for one class fits one cache line, counters included; the two
  // arrays live apart (slots_, freedPtrs_) so that every index is a shift, not a multiply.
  // Counters are written only by the owning thread (plain load+store, no lock prefix).
  struct alignas(64) ClassCache {
    MiniHeap* mh = nullptr;
    char* start = nullptr;
    uint32_t size = 0;
    uint32_t count = 0;  // free slots in slots[0, count)
    uint32_t freed = 0;     // stacked objects of other spans in freedPtrs[0, freed)
    uint32_t freedCap = 0;  // stack capacity of this class
    std::atomic<uint64_t> allocs{0};
    std::atomic<uint64_t> frees{0};
  };
  static_assert(sizeof(ClassCache) == 64);

  static uint64_t& keyWord(void* p) { return static_cast<uint64_t*>(p)[1]; }
  uint64_t keyFor(const void* p) const { return freedKey_ ^ reinterpret_cast<uintptr_t>(p); }
  // A stacked object's key was found on free: abort if it is stacked (a double free).
  MESH_SLOW_PATH void reportStackedFree(void* ptr);

  MESH_SLOW_PATH void* allocSlow(int cls);
  bool refill(int cls);
  void shuffleTail(int cls, uint32_t from);

  GlobalHeap* global_;
  uint64_t freedKey_;
  Rng rng_;
  ClassCache caches_[kNumClasses];
  uint8_t slots_[kNumClasses][kMaxObjectsPerSpan];       // free slots of the attached span
  void* freedPtrs_[kNumClasses][kMaxFreedPerClass];      // stacked objects of other spans
};

}  // namespace mesh
