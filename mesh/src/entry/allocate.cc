#include "entry/allocate.h"

#include <cstring>

#include "common/log.h"
#include "entry/background.h"

namespace mesh {

static bool isPowerOfTwo(size_t x) { return x != 0 && (x & (x - 1)) == 0; }
static void collectIdleFreed(ThreadHeap* th);

// Serves n bytes aligned to `align` (a power of two >= 16). *zeroed tells the caller whether the
// memory is known to be zero (fresh pages), so calloc can skip clearing it.
void* allocateSlow(size_t n, size_t align, bool* zeroed) {
  *zeroed = false;
  if (MESH_UNLIKELY(lockedSection() || !ensureInitialized())) {
    // Nested in a section of ours that may hold locks (a signal handler), or during start-up:
    // never wait for a lock.
    void* p = nullptr;
    if (lockedSection() && !t_allocFromBootstrap && n <= kMaxSmallSize && align <= 16 &&
        runtime().initState.load() == 2) {
      // The interrupted code may hold one class's lock: a larger class serves as well.
      for (int cls = classForSize(n); cls < kNumClasses && p == nullptr; ++cls) {
        p = runtime().heap.allocUnattachedNested(cls);
        if (p != nullptr) countInSharedCounters(true, sizeClass(cls).size);
      }
    }
    if (p == nullptr) p = bootstrap().alloc(n, align);
    if (p == nullptr) errno = ENOMEM;
    return p;
  }
  // A handler that interrupted the cache fast path may take locks but not use the cache.
  bool useCache = !cacheBusy();
  DepthGuard depth;
  Runtime& rt = runtime();
  if (n <= kMaxSmallSize && align <= kSpanPageBytes) {
    int cls = align <= 16 ? classForSize(n) : classForAligned(n, align);
    if (cls >= 0) {
      ThreadHeap* th = useCache ? currentThreadHeapSlow() : nullptr;
      if (th != nullptr) collectIdleFreed(th);
      void* p = th != nullptr ? th->alloc(cls) : rt.heap.allocUnattached(cls);
      if (p != nullptr && th == nullptr) countInSharedCounters(true, sizeClass(cls).size);
      if (p == nullptr) errno = ENOMEM;
      return p;
    }
  }
  size_t alignPages = align > os::kPageSize ? align / os::kPageSize : 1;
  if (useCache && alignPages == 1 && n <= kLargeCacheMaxBlock && t_thread.heap != nullptr) {
    void* p = t_thread.heap->takeLarge((n + os::kPageSize - 1) >> os::kPageShift);
    if (p != nullptr) return p;
  }
  void* p = n < (size_t{1} << 62) ? rt.heap.allocLarge(n == 0 ? 1 : n, alignPages, zeroed) : nullptr;
  if (p == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  countInSharedCounters(true, ((n == 0 ? 1 : n) + os::kPageSize - 1) & ~(os::kPageSize - 1));
  return p;
}

// About every 256th slow free of a thread may run one rate-limited mesh step (MESH_PERIOD_MS)
// and one decay pass (MESH_DECAY_MS), unless the background thread does both.
static __thread uint32_t t_slowFrees __attribute__((tls_model("initial-exec"))) = 0;

void maybeMeshFromFreePath(uint32_t frees) {
  // Only from a free at the top level of our code: never from a signal handler that
  // interrupted the allocator (it could hold the locks meshing takes).
  uint32_t before = t_slowFrees;
  t_slowFrees = before + frees;
  if (t_thread.lockedDepth != 1 || ((before ^ t_slowFrees) & ~255u) == 0) return;
  int onThread = background::onSlowFrees();  // what the background thread does instead
  Runtime& rt = runtime();
  long periodMs = rt.options.get(Opt::period_ms);
  if ((onThread & background::kThreadMeshes) == 0 && periodMs > 0) {
    rt.heap.maybeMesh(static_cast<uint64_t>(periodMs) * 1000000);
  }
  if ((onThread & background::kThreadDecays) == 0) {
    rt.heap.maybeDecay(static_cast<uint64_t>(rt.options.get(Opt::decay_ms)) * 1000000);
  }
}

void* mallocSlow(size_t n) {
  ThreadHeap* th = t_thread.fast;
  if (th != nullptr && n > kMaxSmallSize && n <= kLargeCacheMaxBlock) {
    // A block this thread kept: no lock, so the cache mark suffices (no DepthGuard).
    void* p;
    {
      FastPathMark mark(th);
      p = th->takeLarge((n + os::kPageSize - 1) >> os::kPageShift);
    }
    if (p != nullptr) return p;
  }
  bool zeroed;
  return allocateSlow(n, 16, &zeroed);
}

// Whether small object p carries the key of an object on some thread's freed stack.
static bool isStackedObject(void* p) {
  return runtime().heap.carriesFreedKey(p);
}

// Frees p, which is not in a span attached to this thread, without deferring it.
static void freeToGlobalHeap(void* p) {
  Runtime& rt = runtime();
  if (bootstrap().contains(p)) {
    bootstrap().release(p);
    return;
  }
  uintptr_t entry = rt.heap.entryFor(p);
  bool nested = lockedSection();   // a signal handler interrupted our locked code
  bool cacheUsable = t_thread.fast != nullptr;  // ... or the cache fast path
  // Pinned: a concurrent mesh can neither move nor recycle the miniheap while we read it. A
  // mesher holding a class lock may wait for our pin, so a handler interrupting us from here on
  // must not wait for locks: the DepthGuard tells it.
  DepthGuard depth;
  MiniHeap* mh = rt.heap.pin(p, &entry);
  if (mh == nullptr) fatalPointer(entry == kTombstoneEntry ? "double free of" : "invalid free of", p);
  if (mh->isLarge()) {
    rt.heap.unpin(mh);
    if (nested) return;  // nested in our locked code: leak rather than deadlock
    size_t bytes = mh->pages() << os::kPageShift;
    rt.heap.freeLarge(mh, p);
    countInSharedCounters(false, bytes);
    // Large frees count too, by their pages (their memory is what decay returns).
    maybeMeshFromFreePath(bytes >> os::kPageShift < 256 ? static_cast<uint32_t>(bytes >> os::kPageShift) : 256);
    return;
  }
  uint32_t slot;
  size_t offset = static_cast<size_t>(static_cast<char*>(p) - rt.heap.spanStartFor(p, entry));
  if (!mh->slotForOffset(offset, &slot)) {
    rt.heap.unpin(mh);
    fatalPointer("invalid free of", p);
  }
  ThreadHeap* th = t_thread.heap;
  if (th != nullptr && cacheUsable && mh->owner() == th) {
    // Attached to us: only we can detach it, so unpinning is safe. A handler interrupting the
    // cache update finds us in a locked section (the DepthGuard) and leaves the cache alone.
    rt.heap.unpin(mh);
    th->freeOwned(mh, offset, p);
    return;
  }
  if (isStackedObject(p)) {
    rt.heap.unpin(mh);
    fatalPointer("double free of", p);
  }
  // Nested (signal handler) frees of our own span's objects take the remote path too: the
  // remote bitmap is safe to use from anywhere, and the owner folds it in later.
  int cls = mh->sizeClassIndex();
  rt.heap.freeNonOwnerPinned(mh, slot, p);
  maybeMeshFromFreePath(1);
  if (th != nullptr) th->countRemoteFree(cls);
  else countInSharedCounters(false, sizeClass(cls).size);
}

static void flushFreed(ThreadHeap* th, int cls, uint32_t n) {
  n = th->flushFreed(cls, n, [](void* rejected) { freeToGlobalHeap(rejected); });
  maybeMeshFromFreePath(n);
}

// Called on slow-path events (refills, full stacks; the caller holds a DepthGuard): now and
// then returns the objects one class's freed stack did not need (ThreadHeap::idleFreed).
static void collectIdleFreed(ThreadHeap* th) {
  int cls;
  if (th->idleVisitDue(&cls)) flushFreed(th, cls, th->idleFreed(cls));
}

void flushAllFreed(ThreadHeap* th) {
  DepthGuard depth;
  for (int cls = 0; cls < kNumClasses; ++cls) flushFreed(th, cls, kMaxFreedPerClass);
  th->flushLarge();
}

// freeSlow for everything but a large block this thread keeps with room to spare.
MESH_SLOW_PATH static void freeBeyondCache(void* p);

// Whether p (whose page-map entry gave mh) is a large block small enough for a thread to keep.
static bool keepableLarge(const MiniHeap* mh, const void* p) {
  return mh != nullptr && mh->isLarge() && p == mh->spanStart() && mh->pages() <= (kLargeCacheMaxBlock >> os::kPageShift);
}

void freeSlow(void* p) {
  ThreadHeap* th = t_thread.fast;  // the cache is usable
  if (th != nullptr) {
    uintptr_t entry = runtime().heap.entryFor(p);
    MiniHeap* mh = entryMiniHeap(entry);
    // A large block at most kLargeCacheMaxBlock that this thread keeps for its next large
    // allocation without giving an older one back: no lock, so the cache mark suffices. The
    // free is recorded first, so a second free of the block aborts, whichever thread makes it.
    if (keepableLarge(mh, p) && th->largeKeepHasRoom(mh)) {
      FastPathMark mark(th);
      mh->markLargeFreed(p);
      th->keepLarge(mh);
      return;
    }
  }
  freeBeyondCache(p);
}

static void freeBeyondCache(void* p) {
  if (p == nullptr) return;
  ThreadHeap* th = t_thread.fast;  // the cache is usable
  if (th == nullptr && t_thread.heap == nullptr && !nestedCall() && runtime().heap.arena().contains(p)) {
    // A thread that frees before it ever allocates (a consumer of objects other threads made)
    // gets its heap now, so that its frees are batched like everyone else's.
    {
      DepthGuard depth;
      currentThreadHeapSlow();
    }
    th = t_thread.fast;
  }
  if (th != nullptr) {
    // The fast path found the freed-object stack of p's class full, or p is a large block (kept
    // for reuse if small enough), or misuse to report, or not ours (freeToGlobalHeap handles those).
    GlobalHeap& heap = runtime().heap;
    uintptr_t entry = heap.entryFor(p);
    MiniHeap* mh = entryMiniHeap(entry);
    if (keepableLarge(mh, p)) {
      // Kept by this thread (see freeSlow), giving older blocks back to the arena (locks).
      DepthGuard depth;
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
      if (th->freedCount(cls) >= th->freedCapacity(cls)) {
        DepthGuard depth;
        flushFreed(th, cls, th->overflowFlushCount(cls));
        collectIdleFreed(th);
      }
      FastPathMark mark(th);
      if (th->pushFreed(cls, p)) return;
    }
  }
  freeToGlobalHeap(p);
}

[[noreturn]] static void badPointer(const char* caller, const char* what, const void* p) {
  LineBuffer line;
  line.add("mesh: ").add(caller).add(what).addPtr(p).add('\n').writeTo(2);
  os::abortProcess();
}

size_t usableSize(void* p, const char* caller) {
  if (p == nullptr) return 0;
  if (bootstrap().contains(p)) return bootstrap().usableSize(p);
  GlobalHeap& heap = runtime().heap;
  uintptr_t entry = heap.entryFor(p);
  DepthGuard depth;  // pinned below (see freeSlow)
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

void* reallocate(void* p, size_t n) {
  size_t old = usableSize(p, "realloc");
  GlobalHeap& heap = runtime().heap;
  if (n <= old && !bootstrap().contains(p)) {
    if (old <= kMaxSmallSize) {
      // Same class (or shrinking by less than half): keep the block. (The usable size of a
      // small block is its class size, so no miniheap needs to be read here.)
      if (classForSize(n) == classForSize(old) || n >= old / 2) return p;
    } else if (n > kMaxSmallSize) {
      MiniHeap* mh = entryMiniHeap(heap.entryFor(p));  // large blocks are never meshed
      size_t pages = (n + os::kPageSize - 1) >> os::kPageShift;
      size_t before = mh->pages();
      if (pages < before && !lockedSection()) {
        DepthGuard depth;
        heap.shrinkLarge(mh, pages);
        countInSharedCounters(false, (before - pages) << os::kPageShift);
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

void* allocateAligned(size_t n, size_t align) {
  if (align <= 16) return allocate(n);
  bool zeroed;
  return allocateSlow(n, align, &zeroed);
}

void* allocateZeroed(size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return nullptr;
  }
  bool zeroed = false;
  void* p = n <= kMaxSmallSize && t_thread.heap != nullptr ? allocate(n) : allocateSlow(n, 16, &zeroed);
  if (p != nullptr && !zeroed) std::memset(p, 0, n);
  return p;
}

bool isPowerOfTwoAlignment(size_t align) { return isPowerOfTwo(align); }

}  // namespace mesh
