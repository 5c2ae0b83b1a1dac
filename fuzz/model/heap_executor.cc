#include "model/heap_executor.h"

#include <cstring>

#include "common/log.h"
#include "miniheap/page_entry.h"
#include "miniheap/size_classes.h"
#include "platform/os.h"

namespace mesh::model {
namespace {

size_t pagesFor(size_t bytes) { return (bytes + os::kPageSize - 1) >> os::kPageShift; }

}  // namespace

FreshHeapExecutor::FreshHeapExecutor(const FreshHeapOptions& options)
    : options_(options), heap_(std::make_unique<GlobalHeap>()), otherSeed_(options.seed * 2 + 1) {
  HeapConfig config;
  config.arena.reserveBytes = options.arenaBytes;
  config.arena.minReserveBytes = options.arenaBytes;
  config.arena.maxDirtyBytes = options.maxDirtyBytes;
  config.arena.useMemfd = options.memfd;
  ok_ = heap_->init(config);
  main_ = std::make_unique<ThreadHeap>(heap_.get(), options.seed * 2);
}

FreshHeapExecutor::~FreshHeapExecutor() {
  if (ok_) detachAllThreads();
  if (thread_.running()) thread_.run([this] { other_.reset(); });
  thread_.stop();
}

ThreadHeap& FreshHeapExecutor::current() { return thread_.isCurrent() ? *other_ : *main_; }

void FreshHeapExecutor::flushFreed(ThreadHeap& th, int cls, uint32_t n) {
  th.flushFreed(cls, n, [this](void* rejected) { releaseNow(rejected); });
}

// As the entry layer's collectIdleFreed: on slow-path events, now and then one class's stack
// returns what it did not need.
void FreshHeapExecutor::collectIdleFreed(ThreadHeap& th) {
  int cls;
  if (th.idleVisitDue(&cls)) flushFreed(th, cls, th.idleFreed(cls));
}

void FreshHeapExecutor::flushAll(ThreadHeap& th) {
  for (int cls = 0; cls < kNumClasses; ++cls) flushFreed(th, cls, kMaxFreedPerClass);
  th.flushLarge();
}

void FreshHeapExecutor::detachAllThreads() {
  flushAll(*main_);
  main_->detachAll();
  if (thread_.running()) {
    thread_.run([this] {
      if (other_ == nullptr) return;
      flushAll(*other_);
      other_->detachAll();
    });
  }
}

// As allocateSlow: the cache first, then (a slow event) an idle visit and a refill.
void* FreshHeapExecutor::allocateSmall(int cls) {
  ThreadHeap& th = current();
  void* p = th.tryAlloc(cls);
  if (p != nullptr) return p;
  collectIdleFreed(th);
  return th.alloc(cls);
}

void* FreshHeapExecutor::allocateLarge(size_t n, size_t align, bool* zeroed) {
  *zeroed = false;
  size_t alignPages = align > os::kPageSize ? align / os::kPageSize : 1;
  if (alignPages == 1 && n <= kLargeCacheMaxBlock) {
    void* p = current().takeLarge((n + os::kPageSize - 1) >> os::kPageShift);
    if (p != nullptr) return p;
  }
  return heap_->allocLarge(n == 0 ? 1 : n, alignPages, zeroed);
}

void* FreshHeapExecutor::allocate(size_t n) {
  if (n <= kMaxSmallSize) return allocateSmall(classForSize(n));
  bool zeroed;
  return allocateLarge(n, 1, &zeroed);
}

void* FreshHeapExecutor::allocateAligned(size_t n, size_t align) {
  if (align <= 16) return allocate(n);
  if (n <= kMaxSmallSize && align <= kSpanPageBytes) {
    int cls = classForAligned(n, align);
    if (cls >= 0) return allocateSmall(cls);
  }
  bool zeroed;
  return allocateLarge(n, align, &zeroed);
}

void* FreshHeapExecutor::allocateZeroed(size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) return nullptr;
  bool zeroed = false;
  void* p = n <= kMaxSmallSize ? allocateSmall(classForSize(n)) : allocateLarge(n, 1, &zeroed);
  // Large blocks the arena reports as fresh are left alone: the model then checks the claim.
  if (p != nullptr && !zeroed) std::memset(p, 0, n);
  return p;
}

void* FreshHeapExecutor::reallocate(void* p, size_t n) {
  if (p == nullptr) return allocate(n);
  if (n == 0) {
    release(p);
    return nullptr;
  }
  size_t old = usableSize(p);
  MiniHeap* mh = entryMiniHeap(heap_->entryFor(p));
  if (n <= old) {
    if (mh->isLarge() && n > kMaxSmallSize) {
      if (pagesFor(n) < mh->pages()) heap_->shrinkLarge(mh, pagesFor(n));
      return p;
    }
    // A small block stays where it is when the new size maps to its class, or would waste less
    // than half of it.
    if (!mh->isLarge() && (classForSize(n) == mh->sizeClassIndex() || n >= old / 2)) return p;
  }
  void* fresh = allocate(n);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, p, n < old ? n : old);
  release(p);
  return fresh;
}

// As the entry layer's free (deallocate and freeSlow): a small object goes on the thread's freed
// stack of its class, whichever span it is in, after the same double-free checks; a full stack
// first adapts and flushes (overflowFlushCount) and counts as a slow event. A large block of at
// most kLargeCacheMaxBlock is kept by the thread. Anything else takes releaseNow.
void FreshHeapExecutor::release(void* p) {
  if (p == nullptr) return;
  ThreadHeap& th = current();
  uintptr_t entry = heap_->entryFor(p);
  MiniHeap* mh = heap_->pin(p, &entry);
  if (mh == nullptr) fatalPointer(entry == kTombstoneEntry ? "double free of" : "invalid free of", p);
  if (mh->isLarge()) {
    heap_->unpin(mh);
    if (p == mh->spanStart() && mh->pages() <= (kLargeCacheMaxBlock >> os::kPageShift)) {
      mh->markLargeFreed(p);
      th.keepLarge(mh);
      return;
    }
    releaseNow(p);
    return;
  }
  uint32_t slot;
  bool isSlot = mh->slotForOffset(static_cast<size_t>(static_cast<char*>(p) - heap_->spanStartFor(p, entry)), &slot);
  if (!isSlot) {
    heap_->unpin(mh);
    releaseNow(p);  // reports the invalid free
    return;
  }
  if (heap_->carriesFreedKey(p) || !mh->isLiveUnfreed(slot)) fatalPointer("double free of", p);
  int cls = mh->sizeClassIndex();
  heap_->unpin(mh);
  if (th.freedCount(cls) >= th.freedCapacity(cls)) {
    flushFreed(th, cls, th.overflowFlushCount(cls));
    collectIdleFreed(th);
  }
  if (!th.pushFreed(cls, p)) releaseNow(p);
}

// The entry layer's freeToGlobalHeap: pin the miniheap (a mesh can then neither move nor recycle it while
// we look at it), then free through the owner's cache or the remote path.
void FreshHeapExecutor::releaseNow(void* p) {
  uintptr_t entry = heap_->entryFor(p);
  MiniHeap* mh = heap_->pin(p, &entry);
  if (mh == nullptr) fatalPointer(entry == kTombstoneEntry ? "double free of" : "invalid free of", p);
  if (mh->isLarge()) {
    heap_->unpin(mh);
    heap_->freeLarge(mh, p);
    return;
  }
  size_t offset = static_cast<size_t>(static_cast<char*>(p) - heap_->spanStartFor(p, entry));
  uint32_t slot;
  if (!mh->slotForOffset(offset, &slot)) {
    heap_->unpin(mh);
    fatalPointer("invalid free of", p);
  }
  ThreadHeap& th = current();
  if (mh->owner() == &th) {
    heap_->unpin(mh);  // attached to this thread: only this thread can detach it
    th.freeOwned(mh, offset, p);
    return;
  }
  int cls = mh->sizeClassIndex();
  heap_->freeNonOwnerPinned(mh, slot, p);
  th.countRemoteFree(cls);
}

size_t FreshHeapExecutor::usableSize(void* p) {
  uintptr_t entry = heap_->entryFor(p);
  MiniHeap* mh = entryMiniHeap(entry);
  if (mh == nullptr) fatalPointer("usable size of a pointer that is no block:", p);
  if (mh->isLarge()) {
    if (p != mh->spanStart()) fatalPointer("usable size of the interior of a block:", p);
    if (mh->largeFreed()) fatalPointer("usable size of a freed block:", p);  // kept by a thread
    return mh->pages() << os::kPageShift;
  }
  uint32_t slot;
  size_t offset = static_cast<size_t>(static_cast<char*>(p) - heap_->spanStartFor(p, entry));
  if (!mh->slotForOffset(offset, &slot)) fatalPointer("usable size of the interior of a block:", p);
  if (!heap_->isLiveSmall(p, entry, slot) ||
      heap_->carriesFreedKey(p)) {
    fatalPointer("usable size of a freed block:", p);
  }
  return mh->objectSize();
}

size_t FreshHeapExecutor::compact(bool detachFirst) {
  // mesh_compact() first returns the calling thread's freed objects (flushAllFreed).
  if (detachFirst) detachAllThreads();
  else flushAll(current());
  // MESH-COMPACT-HOOK: the one place where the model forces a mesh pass on a fresh heap:
  // GlobalHeap::meshAll() meshes every class until no pair is left, as mesh_compact() does.
  size_t meshes = heap_->meshAll();
  heap_->releaseFreeMemory();
  return meshes;
}

void FreshHeapExecutor::onOtherThread(const std::function<void()>& fn) {
  thread_.run([&] {
    if (other_ == nullptr) other_ = std::make_unique<ThreadHeap>(heap_.get(), otherSeed_ += 2);
    fn();
  });
}

void FreshHeapExecutor::retireOtherThread() {
  if (!thread_.running()) return;
  // What a thread exit does: return the freed objects it holds and give the spans back; its
  // objects stay live.
  thread_.run([this] {
    if (other_ != nullptr) {
      flushAll(*other_);
      other_->detachAll();
    }
    other_.reset();
  });
  thread_.stop();
}

bool FreshHeapExecutor::mayRunOutOfMemory(size_t n) {
  // Fragmentation can leave a large request without a contiguous run well before the arena is
  // full; allow failures from half-full on.
  ArenaStats a = heap_->arena().stats();
  return a.inUseBytes + n + (size_t{64} << 10) > a.reservedBytes / 2;
}

std::string FreshHeapExecutor::checkEmpty() {
  detachAllThreads();
  heap_->releaseFreeMemory();
  HeapStats s = heap_->stats();
  if (s.mhLive == 0 && s.largeBytes == 0 && s.arena.inUseBytes == 0) return "";
  return "every object was freed and every thread heap detached, but the heap still has " +
         std::to_string(s.mhLive) + " live miniheaps, " + std::to_string(s.largeBytes) +
         " large bytes and " + std::to_string(s.arena.inUseBytes) + " arena bytes in use";
}

}  // namespace mesh::model
