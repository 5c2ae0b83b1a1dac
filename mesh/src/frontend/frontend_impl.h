// The Frontend's slow paths (see frontend.h). Included once per Env, by the translation unit that
// instantiates the Frontend for it (entry/allocate.cc for the process, fuzz/model for tests).
#pragma once

#include <atomic>
#include <cstring>

#include "common/log.h"
#include "frontend/frontend.h"

namespace mesh {

namespace frontend_detail {

// Whether p (whose page-map entry gave mh) is a large block small enough for a thread to keep.
inline bool keepableLarge(const MiniHeap* mh, const void* p) {
  return mh != nullptr && mh->isLarge() && p == mh->spanStart() && mh->pages() <= (kLargeCacheMaxBlock >> os::kPageShift);
}

inline size_t pagesFor(size_t bytes) { return (bytes + os::kPageSize - 1) >> os::kPageShift; }

[[noreturn]] inline void badPointer(const char* caller, const char* what, const void* p) {
  LineBuffer line;
  line.add("mesh: ").add(caller).add(what).addPtr(p).add('\n').writeTo(2);
  os::abortProcess();
}

}  // namespace frontend_detail

template <class Env>
void* Frontend<Env>::mallocSlow(size_t n) {
  ThreadHeap* th = env_.cacheHeap();
  if (th != nullptr && n > kMaxSmallSize && n <= kLargeCacheMaxBlock) {
    // A block this thread kept: no lock, so the cache mark suffices (no locked section).
    void* p;
    {
      typename Env::FastMark mark(th);
      p = mark.usable() ? th->takeLarge(frontend_detail::pagesFor(n)) : nullptr;
    }
    if (p != nullptr) return p;
  }
  bool zeroed;
  return allocateSlow(n, 16, &zeroed);
}

template <class Env>
void* Frontend<Env>::allocateSlow(size_t n, size_t align, bool* zeroed) {
  *zeroed = false;
  void* early;
  if (MESH_UNLIKELY(env_.early(&early, n, align))) return early;
  // A handler that interrupted the cache fast path may take locks but not use the cache.
  bool useCache = !env_.cacheBusy();
  typename Env::LockedSection section;
  GlobalHeap& heap = env_.heap();
  if (n <= kMaxSmallSize && align <= kSpanPageBytes) {
    int cls = align <= 16 ? classForSize(n) : classForAligned(n, align);
    if (cls >= 0) {
      ThreadHeap* th = useCache ? env_.refillHeap() : nullptr;
      if (th != nullptr) collectIdleFreed(th);
      void* p = th != nullptr ? th->alloc(cls) : heap.allocUnattached(cls);
      if (p != nullptr && th == nullptr) env_.countShared(true, sizeClass(cls).size);
      if (p == nullptr) errno = ENOMEM;
      return p;
    }
  }
  size_t alignPages = align > os::kPageSize ? align / os::kPageSize : 1;
  ThreadHeap* owner = env_.threadHeap();
  if (useCache && alignPages == 1 && n <= kLargeCacheMaxBlock && owner != nullptr) {
    void* p = owner->takeLarge(frontend_detail::pagesFor(n));
    if (p != nullptr) return p;
  }
  void* p = n < (size_t{1} << 62) ? heap.allocLarge(n == 0 ? 1 : n, alignPages, zeroed) : nullptr;
  if (p == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  env_.countShared(true, ((n == 0 ? 1 : n) + os::kPageSize - 1) & ~(os::kPageSize - 1));
  return p;
}

// Frees p, which is not in a span attached to this thread, without deferring it.
template <class Env>
void Frontend<Env>::freeToGlobalHeap(void* p) {
  if (env_.isForeign(p)) {
    env_.releaseForeign(p);
    return;
  }
  GlobalHeap& heap = env_.heap();
  uintptr_t entry = heap.entryFor(p);
  bool nested = env_.nested();  // a signal handler interrupted our locked code
  bool cacheUsable = env_.cacheHeap() != nullptr;  // ... or the cache fast path
  // Pinned: a concurrent mesh can neither move nor recycle the miniheap while we read it. A
  // mesher holding a class lock may wait for our pin, so a handler interrupting us from here on
  // must not wait for locks: the locked section tells it.
  typename Env::LockedSection section;
  MiniHeap* mh = heap.pin(p, &entry);
  if (mh == nullptr) fatalPointer(entry == kTombstoneEntry ? "double free of" : "invalid free of", p);
  if (mh->isLarge()) {
    heap.unpin(mh);
    if (nested) return;  // nested in our locked code: leak rather than deadlock
    size_t bytes = mh->pages() << os::kPageShift;
    heap.freeLarge(mh, p);
    env_.countShared(false, bytes);
    // Large frees count too, by their pages (their memory is what decay returns).
    env_.afterFrees(bytes >> os::kPageShift < 256 ? static_cast<uint32_t>(bytes >> os::kPageShift) : 256);
    return;
  }
  uint32_t slot;
  size_t offset = static_cast<size_t>(static_cast<char*>(p) - heap.spanStartFor(p, entry));
  if (!mh->slotForOffset(offset, &slot)) {
    heap.unpin(mh);
    fatalPointer("invalid free of", p);
  }
  ThreadHeap* th = env_.threadHeap();
  if (th != nullptr && cacheUsable && mh->owner() == th) {
    // Attached to us: only we can detach it, so unpinning is safe. A handler interrupting the
    // cache update finds us in a locked section and leaves the cache alone.
    heap.unpin(mh);
    th->freeOwned(mh, offset, p);
    return;
  }
  if (isStackedObject(p)) {
    heap.unpin(mh);
    fatalPointer("double free of", p);
  }
  // Nested (signal handler) frees of our own span's objects take the remote path too: the
  // remote bitmap is safe to use from anywhere, and the owner folds it in later.
  int cls = mh->sizeClassIndex();
  heap.freeNonOwnerPinned(mh, slot, p);
  env_.afterFrees(1);
  if (th != nullptr) th->countRemoteFree(cls);
  else env_.countShared(false, sizeClass(cls).size);
}

template <class Env>
void Frontend<Env>::flushFreed(ThreadHeap* th, int cls, uint32_t n) {
  n = th->flushFreed(cls, n, [this](void* rejected) { freeToGlobalHeap(rejected); });
  env_.afterFrees(n);
}

// Called on slow-path events (refills, full stacks; the caller is in a locked section): now and
// then returns the objects one class's freed stack did not need (ThreadHeap::idleFreed).
template <class Env>
void Frontend<Env>::collectIdleFreed(ThreadHeap* th) {
  int cls;
  if (th->idleVisitDue(&cls)) flushFreed(th, cls, th->idleFreed(cls));
}

template <class Env>
void Frontend<Env>::flushAll(ThreadHeap* th) {
  typename Env::LockedSection section;
  for (int cls = 0; cls < kNumClasses; ++cls) flushFreed(th, cls, kMaxFreedPerClass);
  th->flushLarge();
}

template <class Env>
void Frontend<Env>::returnCache(ThreadHeap* th) {
  typename Env::LockedSection section;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    th->flushFreed(cls, kMaxFreedPerClass, [this](void* rejected) { freeToGlobalHeap(rejected); });
  }
  th->flushLarge();
  th->detachAll();
}

template <class Env>
void Frontend<Env>::freeSlow(void* p) {
  // free(NULL) comes here (the null pointer is outside the arena): some programs make it as
  // often as real frees (espresso-like: 425,000 of 725,000).
  if (p == nullptr) return;
  ThreadHeap* th = env_.cacheHeap();
  if (th != nullptr) {
    uintptr_t entry = env_.heap().entryFor(p);
    MiniHeap* mh = entryMiniHeap(entry);
    // A large block at most kLargeCacheMaxBlock that this thread keeps for its next large
    // allocation without giving an older one back: no lock, so the cache mark suffices. The
    // free is recorded first, so a second free of the block aborts, whichever thread makes it.
    if (frontend_detail::keepableLarge(mh, p) && th->largeKeepHasRoom(mh)) {
      typename Env::FastMark mark(th);
      if (mark.usable()) {
        mh->markLargeFreed(p);
        th->keepLarge(mh);
        return;
      }
    }
  }
  freeBeyondCache(p);
}

// freeSlow for everything but a large block this thread keeps with room to spare.
template <class Env>
void Frontend<Env>::freeBeyondCache(void* p) {
  if (p == nullptr) return;
  GlobalHeap& heap = env_.heap();
  ThreadHeap* th = env_.cacheHeap();
  // A thread that frees before it ever allocates (a consumer of objects other threads made)
  // gets its heap now, so that its frees are batched like everyone else's.
  if (th == nullptr && env_.threadHeap() == nullptr) th = env_.adoptHeapForFree(p);
  if (th != nullptr) {
    // The fast path found the freed-object stack of p's class full, or p is a large block (kept
    // for reuse if small enough), or misuse to report, or not ours (freeToGlobalHeap handles
    // those).
    uintptr_t entry = heap.entryFor(p);
    MiniHeap* mh = entryMiniHeap(entry);
    if (frontend_detail::keepableLarge(mh, p)) {
      // Kept by this thread (see freeSlow), giving older blocks back to the arena (locks).
      typename Env::LockedSection section;
      mh->markLargeFreed(p);
      th->keepLarge(mh);
      return;
    }
    uint32_t slot;
    if (mh != nullptr && mh->sizeClassIndex() < kNumClasses &&
        mh->slotForOffset(static_cast<size_t>(static_cast<char*>(p) - heap.spanStartFor(p, entry)), &slot)) {
      int cls = mh->sizeClassIndex();
      // A stacked object freed again is reported before any flush could clear its key, and so
      // is one whose slot is already free (see ThreadHeap::tryPushFreed).
      if (isStackedObject(p) || !mh->isLiveUnfreed(slot)) fatalPointer("double free of", p);
      // A sparse span's objects go straight back to it (a remote free, no lock), so that malloc
      // does not hand them out again and the span empties (MiniHeap::sparse).
      if (mh->sparse()) {
        th->countSparseFree();
        freeToGlobalHeap(p);
        return;
      }
      if (th->freedCount(cls) >= th->freedCapacity(cls)) {
        typename Env::LockedSection section;
        flushFreed(th, cls, th->overflowFlushCount(cls));
        collectIdleFreed(th);
      }
      typename Env::FastMark mark(th);
      if (mark.usable() && th->pushFreed(cls, p)) return;
    }
  }
  freeToGlobalHeap(p);
}

template <class Env>
size_t Frontend<Env>::usableSizeSlow(void* p, const char* caller) {
  using frontend_detail::badPointer;
  if (p == nullptr) return 0;
  if (env_.isForeign(p)) return env_.foreignUsableSize(p);
  GlobalHeap& heap = env_.heap();
  uintptr_t entry = heap.entryFor(p);
  typename Env::LockedSection section;  // pinned below (see freeToGlobalHeap)
  MiniHeap* mh = heap.pin(p, &entry);
  if (mh == nullptr) {
    badPointer(caller, entry == kTombstoneEntry ? " of freed pointer " : " of invalid pointer ", p);
  }
  size_t size;
  const char* problem = nullptr;
  if (mh->isLarge()) {
    size = mh->pages() << os::kPageShift;
    if (p != mh->spanStart()) problem = " of a pointer into a block ";
    else if (mh->largeFreed()) problem = " of freed pointer ";  // kept by a thread cache
  } else {
    uint32_t slot;
    size = mh->objectSize();
    if (!mh->slotForOffset(static_cast<size_t>(static_cast<char*>(p) - heap.spanStartFor(p, entry)), &slot)) {
      problem = " of a pointer into a block ";
    } else if (!mh->isLiveUnfreed(slot) || isStackedObject(p)) {
      problem = " of freed pointer ";
    }
  }
  heap.unpin(mh);
  if (problem != nullptr) badPointer(caller, problem, p);
  return size;
}

template <class Env>
void* Frontend<Env>::reallocate(void* p, size_t n) {
  if (p == nullptr) return allocate(n);
  if (n == 0) {
    deallocate(p);
    return nullptr;
  }
  size_t old = usableSize(p, "realloc");
  GlobalHeap& heap = env_.heap();
  if (n <= old && !env_.isForeign(p)) {
    if (old <= kMaxSmallSize) {
      // Same class (or shrinking by less than half): keep the block. (The usable size of a
      // small block is its class size, so no miniheap needs to be read here.)
      if (classForSize(n) == classForSize(old) || n >= old / 2) return p;
    } else if (n > kMaxSmallSize) {
      MiniHeap* mh = entryMiniHeap(heap.entryFor(p));  // large blocks are never meshed
      size_t pages = frontend_detail::pagesFor(n);
      size_t before = mh->pages();
      if (pages < before && !env_.nested()) {
        typename Env::LockedSection section;
        heap.shrinkLarge(mh, pages);
        env_.countShared(false, (before - pages) << os::kPageShift);
      }
      return p;
    }
  }
  void* fresh = allocate(n);
  if (fresh == nullptr) return nullptr;  // p stays valid
  std::memcpy(fresh, p, old < n ? old : n);
  deallocate(p);
  return fresh;
}

template <class Env>
void* Frontend<Env>::allocateZeroed(size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return nullptr;
  }
  bool zeroed = false;
  void* p = n <= kMaxSmallSize && env_.threadHeap() != nullptr ? allocate(n) : allocateSlow(n, 16, &zeroed);
  if (p != nullptr && !zeroed) std::memset(p, 0, n);
  return p;
}

}  // namespace mesh
