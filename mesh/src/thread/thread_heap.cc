#include "thread/thread_heap.h"

namespace mesh {

ThreadHeap::ThreadHeap(GlobalHeap* global, uint64_t seed) : global_(global), rng_(seed) {}

// Randomizes slots[from, count): objects land at random offsets in a span, which is what makes
// two spans' live objects unlikely to collide and so makes meshing work.
void ThreadHeap::shuffleTail(ClassCache& c, uint32_t from) {
  for (uint32_t i = c.count; i > from + 1; --i) {
    uint32_t j = from + rng_.below(i - from);
    uint8_t t = c.slots[i - 1];
    c.slots[i - 1] = c.slots[j];
    c.slots[j] = t;
  }
}

bool ThreadHeap::refill(int cls) {
  ClassCache& c = caches_[cls];
  if (c.mh != nullptr) {
    // First take back what other threads freed into the attached span.
    c.mh->foldRemote([&c](uint32_t slot) { c.slots[c.count++] = static_cast<uint8_t>(slot); });
    if (c.count != 0) {
      shuffleTail(c, 0);
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
  for (uint32_t slot = 0; slot < n; ++slot) {
    if (!mh->isLive(slot)) c.slots[c.count++] = static_cast<uint8_t>(slot);
  }
  shuffleTail(c, 0);
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
