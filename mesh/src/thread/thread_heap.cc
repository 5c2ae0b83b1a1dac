#include "thread/thread_heap.h"

#include <cstring>

#include "platform/os.h"

namespace mesh {

ThreadHeap::ThreadHeap(GlobalHeap* global, uint64_t seed)
    : global_(global),
      freedKey_(global->freedKey()),
      lane_(global->joinLane()),
      rng_(seed) {
  for (int cls = 0; cls < kNumClasses; ++cls) {
    uint32_t cap = freedCapacityMax(cls);
    setFreedCount(cls, 0);
    setFreedCapacity(cls, cap < kMinFreedPerClass ? cap : kMinFreedPerClass);
  }
  // The sparse line: top == limit, so every push finds it full.
  ClassCache& sparse = caches_[kNumClasses];
  sparse.freedTop.store(freedStore_, std::memory_order_relaxed);
  sparse.lowWater = freedStore_;
  sparse.freedLimit = freedStore_;
}

void ThreadHeap::reportStackedFree(void* ptr) {
  // Either the slot is already free in its span, or the object carries the key of a stacked
  // object (this thread's or another's): freeing it again would hand it out twice.
  fatalPointer("double free of", ptr);
}

// Randomizes the free slots: objects land at random offsets in a span, which is what makes two
// spans' live objects unlikely to collide and so makes meshing work.
//
// While this is the process's only thread heap, the randomness is at the granularity of windows
// of kPlacementWindow free slots (consecutive in address order, handed out in address order, the
// windows in random order): objects allocated one after another then mostly share cache lines
// and pages, as a program that walks them in allocation order expects (python-churn took 1.1x
// jemalloc's time with slot-by-slot placement, 1.0x with windows). Windows cost nothing in
// meshing (kvstore, Redis and the fragmenter kept their figures). With several threads, objects
// of consecutive mallocs may go to different threads, and neighbours in one line would make
// those threads fight over it: placement is slot by slot. So it is for the first span a thread
// heap fills in each class: a program's first few objects of a size are often per-thread state
// made before the threads start (cache-scratch's pattern: one object per thread, handed over,
// freed and reused there; with windows its threads took 4.5x jemalloc's time).
void ThreadHeap::shuffle(int cls) {
  ClassCache& c = caches_[cls];
  uint32_t count = c.count.load(std::memory_order_relaxed);
  uint8_t* slots = slots_[cls];
  bool first = (shuffledClasses_ & (uint64_t{1} << cls)) == 0;
  shuffledClasses_ |= uint64_t{1} << cls;
  if (!first && count > kPlacementWindow && global_->liveThreadHeaps() <= 1) {
    shuffleWindows(cls, count);
  } else {
    for (uint32_t i = count; i > 1; --i) {
      uint32_t j = rng_.below(i);
      uint8_t t = slots[i - 1];
      slots[i - 1] = slots[j];
      slots[j] = t;
    }
  }
  for (uint32_t i = 0; i < count; ++i) slotPtrs_[cls][i] = c.mh->slotAddress(slots[i]);
}

void ThreadHeap::shuffleWindows(int cls, uint32_t count) {
  uint8_t* slots = slots_[cls];
  // The free slots are in address order: a refill starts from an empty array (malloc emptied
  // it) and lists them from the span's bitmap, or from its folded remote frees, word by word and
  // bit by bit. Windows are runs of kPlacementWindow of them. (Were they not sorted, windows
  // would merely be less local: placement, not correctness.)
  uint8_t sorted[kMaxObjectsPerSpan];
  std::memcpy(sorted, slots, count);
  uint32_t windows = (count + kPlacementWindow - 1) / kPlacementWindow;
  uint8_t order[kMaxObjectsPerSpan / kPlacementWindow];
  for (uint32_t i = 0; i < windows; ++i) order[i] = static_cast<uint8_t>(i);
  for (uint32_t i = windows; i > 1; --i) {
    uint32_t j = rng_.below(i);
    uint8_t t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
  // malloc takes from the top: the first window goes at the top, its lowest slot last. A whole
  // window is one 8-byte load, a byte swap and a store.
  static_assert(kPlacementWindow == sizeof(uint64_t));
  uint32_t pos = count;
  for (uint32_t i = 0; i < windows; ++i) {
    uint32_t start = order[i] * kPlacementWindow;
    if (start + kPlacementWindow <= count) {
      uint64_t w;
      std::memcpy(&w, sorted + start, sizeof w);
      w = __builtin_bswap64(w);
      pos -= kPlacementWindow;
      std::memcpy(slots + pos, &w, sizeof w);
    } else {
      for (uint32_t k = start; k < count; ++k) slots[--pos] = sorted[k];
    }
  }
}

bool ThreadHeap::refill(int cls) {
  ClassCache& c = caches_[cls];
  uint32_t count = c.count.load(std::memory_order_relaxed);
  if (c.mh != nullptr) {
    // First take back what other threads freed into the attached span.
    uint32_t before = count;
    c.mh->foldRemote([&count, this, cls](uint32_t slot) { slots_[cls][count++] = static_cast<uint8_t>(slot); });
    bump(c.supplied, count - before);
    c.count.store(count, std::memory_order_relaxed);
    if (count != 0) {
      shuffle(cls);
      return true;
    }
    global_->detach(c.mh);
    c.mh = nullptr;
  }
  MiniHeap* mh = global_->attach(cls, this, lane_);
  if (mh == nullptr) return false;
  c.mh = mh;
  count = 0;
  uint32_t n = mh->objectCount();
  for (uint32_t w = 0; w * 64 < n; ++w) {
    uint64_t freeBits = ~mh->liveWord(static_cast<int>(w));
    if (n - w * 64 < 64) freeBits &= (uint64_t{1} << (n - w * 64)) - 1;
    while (freeBits != 0) {
      slots_[cls][count++] = static_cast<uint8_t>(w * 64 + static_cast<uint32_t>(__builtin_ctzll(freeBits)));
      freeBits &= freeBits - 1;
    }
  }
  bump(c.supplied, count);
  c.count.store(count, std::memory_order_relaxed);
  shuffle(cls);
  return count != 0;
}

void* ThreadHeap::allocSlow(int cls) {
  if (!refill(cls)) return nullptr;
  return alloc(cls);
}

void* ThreadHeap::takeLarge(size_t pages) {
  for (uint32_t i = largeCount_; i-- > 0;) {
    MiniHeap* mh = large_[i];
    size_t have = mh->pages();
    if (have < pages || have > pages + pages / 4) continue;
    for (uint32_t j = i + 1; j < largeCount_; ++j) large_[j - 1] = large_[j];
    --largeCount_;
    size_t bytes = have << os::kPageShift;
    largeKeptBytes_.store(largeKeptBytes_.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
    bump(largeHits_, 1);
    bump(largeBytes_, static_cast<int64_t>(bytes));
    mh->reuseLarge();
    return mh->spanStart();
  }
  return nullptr;
}

void ThreadHeap::makeLargeRoom(size_t bytes) {
  uint64_t kept = largeKeptBytes_.load(std::memory_order_relaxed);
  while (largeCount_ == kLargeCacheEntries || kept + bytes > kLargeCacheMaxBytes) {
    MiniHeap* old = large_[0];
    for (uint32_t j = 1; j < largeCount_; ++j) large_[j - 1] = large_[j];
    --largeCount_;
    kept -= old->pages() << os::kPageShift;
    global_->releaseLarge(old);
  }
  largeKeptBytes_.store(kept, std::memory_order_relaxed);
}

void ThreadHeap::flushLarge() {
  for (uint32_t i = 0; i < largeCount_; ++i) global_->releaseLarge(large_[i]);
  largeCount_ = 0;
  largeKeptBytes_.store(0, std::memory_order_relaxed);
}

void ThreadHeap::dropLarge() {
  // The blocks stay allocated: count them as handed out again.
  bump(largeBytes_, static_cast<int64_t>(largeKeptBytes_.load(std::memory_order_relaxed)));
  bump(largeHits_, largeCount_);
  largeCount_ = 0;
  largeKeptBytes_.store(0, std::memory_order_relaxed);
}

ThreadHeap::Totals ThreadHeap::totals() const {
  Totals t;
  t.allocs = largeHits_.load(std::memory_order_relaxed);
  t.frees = largeKeeps_.load(std::memory_order_relaxed);
  t.bytes = largeBytes_.load(std::memory_order_relaxed);
  t.largeAllocs = t.allocs;
  t.largeKeptBytes = largeKeptBytes_.load(std::memory_order_relaxed);
  t.cachedBytes = t.largeKeptBytes;
  t.sparseFrees = sparseFrees_.load(std::memory_order_relaxed);
  for (int cls = 0; cls < kNumClasses; ++cls) {
    const ClassCache& c = caches_[cls];
    // Every object handed out came from what was supplied (and what this thread freed locally
    // back into the cache) and is no longer in the cache. Read racily: a snapshot, not exact
    // while the owner runs.
    uint64_t local = c.frees.load(std::memory_order_relaxed);
    uint64_t remote = c.remoteFrees.load(std::memory_order_relaxed);
    int64_t inCache = static_cast<int64_t>(c.count.load(std::memory_order_relaxed)) +
                      static_cast<int64_t>(freedCount(cls));
    int64_t allocs = c.supplied.load(std::memory_order_relaxed) + static_cast<int64_t>(local) - inCache;
    uint64_t a = allocs > 0 ? static_cast<uint64_t>(allocs) : 0;
    uint64_t f = local + remote;
    t.allocs += a;
    t.frees += f;
    t.bytes += (static_cast<int64_t>(a) - static_cast<int64_t>(f)) * sizeClass(cls).size;
    t.cachedBytes += static_cast<uint64_t>(inCache) * sizeClass(cls).size;
  }
  return t;
}

void ThreadHeap::detachAll() {
  for (ClassCache& c : caches_) {
    if (c.mh != nullptr) global_->detach(c.mh);
    c.mh = nullptr;
    bump(c.supplied, -static_cast<int64_t>(c.count.load(std::memory_order_relaxed)));
    c.count.store(0, std::memory_order_relaxed);
  }
}

}  // namespace mesh
