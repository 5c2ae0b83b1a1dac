#include "thread/thread_heap.h"

namespace mesh {

ThreadHeap::ThreadHeap(GlobalHeap* global, uint64_t seed)
    : global_(global), freedKey_(global->freedKey()), rng_(seed) {
  for (int cls = 0; cls < kNumClasses; ++cls) {
    // Up to 64 KiB of stacked objects per class, at least 4 objects.
    uint32_t cap = (uint32_t{64} << 10) / sizeClass(cls).size;
    caches_[cls].freedCap = cap < 4 ? 4 : cap > kMaxFreedPerClass ? kMaxFreedPerClass : cap;
  }
}

void ThreadHeap::reportStackedFree(void* ptr) {
  // Either the slot is already free in its span, or the object carries the key of a stacked
  // object (this thread's or another's): freeing it again would hand it out twice.
  fatalPointer("double free of", ptr);
}

// Randomizes slots[from, count): objects land at random offsets in a span, which is what makes
// two spans' live objects unlikely to collide and so makes meshing work.
void ThreadHeap::shuffleTail(int cls, uint32_t from) {
  ClassCache& c = caches_[cls];
  for (uint32_t i = c.count; i > from + 1; --i) {
    uint32_t j = from + rng_.below(i - from);
    uint8_t t = slots_[cls][i - 1];
    slots_[cls][i - 1] = slots_[cls][j];
    slots_[cls][j] = t;
  }
}

bool ThreadHeap::refill(int cls) {
  ClassCache& c = caches_[cls];
  if (c.mh != nullptr) {
    // First take back what other threads freed into the attached span.
    c.mh->foldRemote([&c, this, cls](uint32_t slot) { slots_[cls][c.count++] = static_cast<uint8_t>(slot); });
    if (c.count != 0) {
      shuffleTail(cls, 0);
      return true;
    }
    global_->detach(c.mh);
    c.mh = nullptr;
  }
  MiniHeap* mh = global_->attach(cls, this);
  if (mh == nullptr) return false;
  c.mh = mh;
  c.start = mh->spanStart();
  c.size = mh->objectSize();
  c.count = 0;
  uint32_t n = mh->objectCount();
  for (uint32_t w = 0; w * 64 < n; ++w) {
    uint64_t freeBits = ~mh->liveWord(static_cast<int>(w));
    if (n - w * 64 < 64) freeBits &= (uint64_t{1} << (n - w * 64)) - 1;
    while (freeBits != 0) {
      slots_[cls][c.count++] = static_cast<uint8_t>(w * 64 + static_cast<uint32_t>(__builtin_ctzll(freeBits)));
      freeBits &= freeBits - 1;
    }
  }
  shuffleTail(cls, 0);
  return c.count != 0;
}

void* ThreadHeap::allocSlow(int cls) {
  if (!refill(cls)) return nullptr;
  return alloc(cls);
}

ThreadHeap::Totals ThreadHeap::totals() const {
  Totals t;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    uint64_t a = caches_[cls].allocs.load(std::memory_order_relaxed);
    uint64_t f = caches_[cls].frees.load(std::memory_order_relaxed);
    t.allocs += a;
    t.frees += f;
    t.bytes += (static_cast<int64_t>(a) - static_cast<int64_t>(f)) * sizeClass(cls).size;
  }
  return t;
}

void ThreadHeap::detachAll() {
  for (ClassCache& c : caches_) {
    if (c.mh != nullptr) global_->detach(c.mh);
    c.mh = nullptr;
    c.count = 0;
  }
}

}  // namespace mesh
