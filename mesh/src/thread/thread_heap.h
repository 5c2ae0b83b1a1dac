// ThreadHeap: the per-thread cache. For each size class it keeps a stack of objects this thread
// freed (of any span, see pushFreed), which malloc serves first, and at most one attached span
// with an array of that span's free slots in random order, which malloc serves next. No locks,
// no atomic read-modify-write on either path. Frees from other threads arrive through the
// attached span's remote bitmap and are folded in when the array runs dry.
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
#include "platform/cpu.h"

namespace mesh {

// A class's freed stack holds between kMinFreedPerClass and kMaxFreedPerClass objects (and at
// most 256 KiB; see ThreadHeap::overflowFlushCount for how it adapts).
inline constexpr uint32_t kMaxFreedPerClass = 2048;
inline constexpr uint32_t kMinFreedPerClass = 64;

namespace detail {
// The most objects a class's freed stack may hold: 256 KiB of them, at most kMaxFreedPerClass and
// at least 4. The stacks of all classes are rows of one array, each as long as this.
constexpr uint32_t freedRowLength(int cls) {
  uint32_t cap = (uint32_t{256} << 10) / kClassTable.classes[cls].size;
  return cap < 4 ? 4 : cap > kMaxFreedPerClass ? kMaxFreedPerClass : cap;
}
struct FreedRows {
  uint32_t start[kNumClasses + 1];
};
constexpr FreedRows makeFreedRows() {
  FreedRows r{};
  for (int cls = 0; cls < kNumClasses; ++cls) r.start[cls + 1] = r.start[cls] + freedRowLength(cls);
  return r;
}
inline constexpr FreedRows kFreedRows = makeFreedRows();
}  // namespace detail
// Freed large blocks a thread keeps for its next large allocations: at most this many, none
// larger than kLargeCacheMaxBlock, at most kLargeCacheMaxBytes in all.
inline constexpr uint32_t kLargeCacheEntries = 8;
inline constexpr size_t kLargeCacheMaxBlock = size_t{256} << 10;
inline constexpr size_t kLargeCacheMaxBytes = size_t{1} << 20;

class ThreadHeap {
 public:
  ThreadHeap(GlobalHeap* global, uint64_t seed);
  ~ThreadHeap() { global_->leaveLane(lane_); }
  // The SpanLists lane of the spans this heap attaches (GlobalHeap::joinLane).
  int lane() const { return lane_; }
  ThreadHeap(const ThreadHeap&) = delete;
  ThreadHeap& operator=(const ThreadHeap&) = delete;

  // Fast path: an object of class cls from the cache (the freed stack first, as its objects are
  // the most recently used), or nullptr when the cache has none. Each counter is read once.
  MESH_FAST_PATH void* tryAlloc(int cls) { return tryAllocLine(static_cast<size_t>(cls) * kClassLineBytes); }
  // tryAlloc by class line offset (classLineForSize, the malloc fast path).
  MESH_FAST_PATH void* tryAllocLine(size_t line) {
    size_t cls = line / kClassLineBytes;
    ClassCache& c = cacheAtLine(line);
    void** top = c.freedTop.load(std::memory_order_relaxed);
    // One compare covers both "the stack is empty" and "the low-water mark moves" (the mark is
    // never above the top and never below the bottom).
    if (MESH_LIKELY(top != c.lowWater)) return popFreedAt(c, top);
    if (top != freedBase(cls)) {
      c.lowWater = top - 1;
      return popFreedAt(c, top);
    }
    uint32_t count = c.count.load(std::memory_order_relaxed);
    if (MESH_LIKELY(count != 0)) return popAt(cls, c, count);
    return nullptr;
  }
  // An object of class cls, refilling when needed; nullptr when out of memory.
  MESH_FAST_PATH void* alloc(int cls) {
    void* p = tryAlloc(cls);
    return p != nullptr ? p : allocSlow(cls);
  }

  // Frees ptr, an object of mh, a span attached to this heap, at byte offset `offset` inside its
  // span, straight back into the free-slot array (the unbatched path of Frontend::
  // freeToGlobalHeap). Aborts on an invalid or double free.
  void freeOwned(MiniHeap* mh, size_t offset, void* ptr) {
    uint32_t slot;
    if (MESH_UNLIKELY(!mh->slotForOffset(offset, &slot))) fatalPointer("invalid free of", ptr);
    if (MESH_UNLIKELY(!mh->isLiveUnfreed(slot) || keyWord(ptr) == keyFor(ptr))) reportStackedFree(ptr);
    mh->clearLive(slot);
    pushSlot(mh->sizeClassIndex(), slot, ptr);
  }

  // pushFreed for the fast path: false also for a suspected double free (the slow path reports).
  // mh and slot are ptr's miniheap and slot as the caller read them without a lock: a slot
  // already free there means a double free (a racing reader can only miss one, never invent
  // one: the object was allocated before the caller got it). An object freed remotely and not
  // folded yet is still live there but carries the key (GlobalHeap::setFreedKey), so the remote
  // bits need not be read.
  MESH_FAST_PATH bool tryPushFreed(const MiniHeap* mh, size_t slot, void* ptr) {
    if (MESH_UNLIKELY(!mh->isLive(slot))) return false;
    // caches_[class], from an offset the miniheap keeps (a class line, or for a sparse span the
    // extra line past them, whose stack is always full: see MiniHeap::sparse).
    ClassCache& c = cacheAtLine(mh->classLineOffset());
    uint64_t key = keyFor(ptr);
    void** top = c.freedTop.load(std::memory_order_relaxed);
    if (MESH_UNLIKELY(keyWord(ptr) == key || top == c.freedLimit)) return false;
    stackAt(c, top, ptr, key);
    return true;
  }

  // Counts a free of a class-cls object this heap does not own (a remote free).
  void countRemoteFree(int cls) { bump(caches_[cls].remoteFrees, 1); }
  // Counts a free that skipped the freed stack because the object's span is sparse (it is
  // counted as a remote free too).
  void countSparseFree() { bump(sparseFrees_, 1); }

  // --- freed objects -----------------------------------------------------------------------
  // Every small free by this thread goes to a per-class stack (LIFO, like a tcache) that malloc
  // serves first, whichever span the object is in: one path for every free, no bitmap write on
  // either side, and no branch that depends on where an object came from. The spans still
  // count stacked objects as live. When a stack is full, its oldest objects go back
  // (overflowFlushCount, flushFreed): those of the attached span to its free-slot array, the
  // others to their spans in one locked batch (GlobalHeap::freeBatch). Each stacked object
  // carries a key (word 1, address-salted) so that a second free of it, by any thread, is seen:
  // the same block is never handed out twice. The key stays when the object leaves the stack
  // for a span and is cleared when the object is handed out again (see
  // GlobalHeap::setFreedKey).

  // Stacks ptr, a freed object of class cls (as read from its miniheap without a lock; the batch
  // checks it). False when the stack is full: flushFreed first. Aborts on a detected double free.
  MESH_FAST_PATH bool pushFreed(int cls, void* ptr) {
    ClassCache& c = caches_[cls];
    uint64_t key = keyFor(ptr);
    if (MESH_UNLIKELY(keyWord(ptr) == key)) reportStackedFree(ptr);
    void** top = c.freedTop.load(std::memory_order_relaxed);
    if (MESH_UNLIKELY(top == c.freedLimit)) return false;
    stackAt(c, top, ptr, key);
    return true;
  }
  // Hands the n oldest objects of class cls's stack (at most all of them) back: those of the
  // attached span to its free-slot array (no lock), the others to their spans in one locked
  // batch. Pointers the batch rejects (misuse to report) are passed to onRejected after the
  // class lock was released. Returns the number of objects handed back.
  template <typename F>
  uint32_t flushFreed(int cls, uint32_t n, F&& onRejected) {
    ClassCache& c = caches_[cls];
    uint32_t have = freedCount(cls);
    if (n > have) n = have;
    if (n == 0) return 0;
    // The attached span is never meshed while attached, so its objects lie in its own range
    // (one it was meshed with before, reached through another range, takes the batch).
    MiniHeap* own = c.mh;
    uintptr_t ownStart = own != nullptr ? reinterpret_cast<uintptr_t>(own->spanStart()) : 0;
    size_t ownBytes = own != nullptr ? size_t{own->pages()} * kSpanPageBytes : 0;
    uint32_t count = c.count.load(std::memory_order_relaxed);
    void** batch = flushBatch_;
    uint32_t batched = 0;
    for (uint32_t i = 0; i < n; ++i) {
      void* p = freedBase(cls)[i];
      size_t off = reinterpret_cast<uintptr_t>(p) - ownStart;
      uint32_t slot;
      if (off < ownBytes && own->slotForOffset(off, &slot) && own->isLiveUnfreed(slot)) {
        own->clearLive(slot);
        slots_[cls][count] = static_cast<uint8_t>(slot);
        slotPtrs_[cls][count++] = p;
      } else {
        batch[batched++] = p;
      }
    }
    c.count.store(count, std::memory_order_relaxed);
    void** row = freedBase(cls);
    for (uint32_t i = n; i < have; ++i) row[i - n] = row[i];
    setFreedCount(cls, have - n);
    // A new interval starts (see overflowFlushCount).
    c.markAtFlush = (have - n) | (c.markAtFlush & kGrewInRun);
    bump(c.supplied, -static_cast<int64_t>(batched));
    uint32_t rejected = batched != 0 ? global_->freeBatch(cls, batch, batched) : 0;
    for (uint32_t i = 0; i < rejected; ++i) {
      keyWord(batch[i]) = 0;  // not a freed object of ours after all: let onRejected judge it
      onRejected(batch[i]);
    }
    return n;
  }
  uint32_t freedCount(int cls) const {
    return static_cast<uint32_t>(caches_[cls].freedTop.load(std::memory_order_relaxed) - freedBase(cls));
  }
  uint32_t freedCapacity(int cls) const { return static_cast<uint32_t>(caches_[cls].freedLimit - freedBase(cls)); }
  // The most a class's stack may grow to: 256 KiB of objects, at most kMaxFreedPerClass and at
  // least 4 objects.
  static uint32_t freedCapacityMax(int cls) { return detail::freedRowLength(cls); }
  // The stack of class cls is full and a free is waiting: how many of its oldest objects to hand
  // back (0: the capacity grew instead). A stack is as deep as the program's frees run ahead of
  // its allocations of the class. If malloc emptied it since the last flush, it was in use as a
  // cache and too small (frees and allocations come in runs longer than it): its capacity
  // doubles (up to freedCapacityMax), once per run of frees: a program that frees batches of
  // blocks and then allocates as many again (glibc's malloc-simple benchmark, a request's objects)
  // grows the stack to its batch within a few batches, after which neither side leaves the
  // cache. If malloc took nothing from below what the last flush left (a class being freed, not
  // allocated: a cache emptying, a structure torn down), the stack only delays the objects'
  // return while they keep their spans alive: its capacity halves (down to kMinFreedPerClass),
  // except in the run of frees that made it grow (the rest of a batch longer than the stack).
  // Otherwise (frees and allocations interleaved, the depth wandering) the capacity stays. Half
  // the capacity is kept.
  uint32_t overflowFlushCount(int cls) {
    ClassCache& c = caches_[cls];
    uint32_t have = freedCount(cls);
    uint32_t cap = freedCapacity(cls);
    uint32_t capMax = freedCapacityMax(cls);
    uint32_t low = lowWaterCount(cls);
    uint32_t mark = c.markAtFlush & ~kGrewInRun;
    bool grew = (c.markAtFlush & kGrewInRun) != 0;
    if (low == 0 && mark > 0 && cap < capMax) {
      setFreedCapacity(cls, cap * 2 > capMax ? capMax : cap * 2);
      c.lowWater = c.freedTop.load(std::memory_order_relaxed);
      c.markAtFlush = have | kGrewInRun;
      return 0;
    }
    if (low < mark) grew = false;
    c.markAtFlush = mark | (grew ? kGrewInRun : 0);
    if (low >= mark && !grew && cap > kMinFreedPerClass) {
      cap = cap / 2 < kMinFreedPerClass ? kMinFreedPerClass : cap / 2;
      setFreedCapacity(cls, cap);
    }
    uint32_t keep = cap / 2;
    return have > keep ? have - keep : 0;
  }
  // Objects that sit unused at the bottom of a stack keep their spans from being reused,
  // released or meshed (they count as live). Every so often (see collectIdleFreed in
  // entry/allocate.cc) one class is visited: the objects that stayed below the stack's
  // low-water mark since the last visit (or flush) were not needed, and three quarters of them
  // go back (flushFreed, which starts a new interval). Returns how many.
  uint32_t idleFreed(int cls) {
    ClassCache& c = caches_[cls];
    uint32_t low = lowWaterCount(cls);
    uint32_t idle = low - low / 4;
    c.lowWater = c.freedTop.load(std::memory_order_relaxed);
    c.markAtFlush = freedCount(cls);
    return idle;
  }
  // Counts a slow-path event (a refill or a full stack); true every kIdleVisitPeriod-th, when
  // it is time to visit the next class (returned in *cls).
  bool idleVisitDue(int* cls) {
    if (++slowEvents_ % kIdleVisitPeriod != 0) return false;
    *cls = nextIdleVisit_;
    nextIdleVisit_ = nextIdleVisit_ + 1 == kNumClasses ? 0 : nextIdleVisit_ + 1;
    return true;
  }
  static constexpr uint32_t kIdleVisitPeriod = 4;
  // In ClassCache::markAtFlush: the capacity grew in the current run of frees (see
  // overflowFlushCount).
  static constexpr uint32_t kGrewInRun = 1u << 31;
  // Forgets the stacks (a fork child cleaning up another thread's heap, whose stacks may have
  // been mid-update at the fork: those objects stay allocated).
  void dropFreed() {
    for (int cls = 0; cls < kNumClasses; ++cls) {
      bump(caches_[cls].supplied, -static_cast<int64_t>(freedCount(cls)));
      setFreedCount(cls, 0);
      caches_[cls].markAtFlush = 0;
    }
  }

  // --- freed large blocks ---------------------------------------------------------------
  // A free of a large block (above the largest class, at most kLargeCacheMaxBlock) records the
  // free in its miniheap (remote bit 0: a second free aborts as a double free) and keeps the
  // block here, newest last; the next large allocation of about that size takes it back without
  // a lock. Blocks pushed out by newer ones, and all of them on flushLarge (thread exit, trim,
  // compaction), go back to the arena.
  // A kept block of at least `pages` pages and at most a quarter more, or nullptr.
  void* takeLarge(size_t pages);
  // Keeps mh, a large block of at most kLargeCacheMaxBlock whose free the caller recorded.
  // Older blocks go back to the arena (a lock) unless largeKeepHasRoom(mh).
  void keepLarge(MiniHeap* mh) {
    size_t bytes = size_t{mh->pages()} << os::kPageShift;
    if (!largeKeepHasRoom(mh)) makeLargeRoom(bytes);
    large_[largeCount_++] = mh;
    largeKeptBytes_.store(largeKeptBytes_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
    bump(largeKeeps_, 1);
    bump(largeBytes_, -static_cast<int64_t>(bytes));
  }
  bool largeKeepHasRoom(const MiniHeap* mh) const {
    return largeCount_ < kLargeCacheEntries &&
           largeKeptBytes_.load(std::memory_order_relaxed) + (size_t{mh->pages()} << os::kPageShift) <=
               kLargeCacheMaxBytes;
  }
  void flushLarge();
  // Gives the oldest kept blocks back until one more of `bytes` fits.
  MESH_SLOW_PATH void makeLargeRoom(size_t bytes);
  // Forgets the kept blocks (fork child, see dropFreed): they stay allocated.
  void dropLarge();

  // Counters summed over classes; read by statistics from any thread (racy but atomic).
  struct Totals {
    uint64_t allocs = 0;
    uint64_t frees = 0;
    int64_t bytes = 0;
    uint64_t largeAllocs = 0;       // large allocations served from kept blocks
    uint64_t largeKeptBytes = 0;    // bytes of the kept blocks now
    uint64_t cachedBytes = 0;       // free memory the cache holds: stacked objects, the attached
                                    // spans' free slots and the kept blocks
    uint64_t sparseFrees = 0;       // frees of sparse spans' objects (countSparseFree)
  };
  Totals totals() const;

  // Gives every attached span back to the global heap (thread exit, fork child cleanup).
  void detachAll();

 private:
  // What malloc and free read for one class fits one cache line, counters included; the three
  // arrays live apart (slots_, slotPtrs_, freedStore_) so that every index is a shift, not a
  // multiply. The freed stack is kept as pointers into its row of freedStore_ (top, low-water mark,
  // limit), so that push and pop need no index arithmetic and malloc's pop tests one compare.
  // Everything is written only by the owning thread (relaxed load+store: plain moves) and read
  // by statistics from any thread. malloc counts nothing: the number of allocations follows
  // from what went into the cache and what is left (see totals()).
  struct alignas(64) ClassCache {
    MiniHeap* mh = nullptr;
    // Stacked freed objects are freedBase(cls)[0, freedTop).
    std::atomic<void**> freedTop{nullptr};
    // Lowest top since the last flush or idle visit (freedBase(cls) <= lowWater <= freedTop).
    void** lowWater = nullptr;
    void** freedLimit = nullptr;     // freedBase(cls) + the stack's capacity now
    std::atomic<uint32_t> count{0};  // free slots in slots_[cls][0, count)
    uint32_t markAtFlush = 0;        // the depth that the last flush or visit left
    std::atomic<int64_t> supplied{0};     // slots given to the cache by refills, minus those
                                          // taken back unused (detach, flush, drop)
    std::atomic<uint64_t> frees{0};        // frees by this thread on the fast paths
    std::atomic<uint64_t> remoteFrees{0};  // frees by this thread through the global heap
  };
  static_assert(sizeof(ClassCache) == kClassLineBytes);
  MESH_FAST_PATH ClassCache& cacheAtLine(size_t line) {
    return *reinterpret_cast<ClassCache*>(reinterpret_cast<char*>(caches_) + line);
  }

  // Adds delta to a counter only this thread writes (see cpu::addOwned).
  template <typename T, typename D>
  static void bump(std::atomic<T>& counter, D delta) {
    cpu::addOwned(counter, delta);
  }
  // The top of the free-slot array (count > 0) and of the freed stack (freed > 0).
  MESH_FAST_PATH void* popAt(int cls, ClassCache& c, uint32_t count) {
    uint32_t n = count - 1;
    c.count.store(n, std::memory_order_relaxed);
    c.mh->setLive(slots_[cls][n]);
    void* p = slotPtrs_[cls][n];
    if (p == nullptr) __builtin_unreachable();  // lets the caller drop its null test
    keyWord(p) = 0;  // a freed object keeps its key until now (see GlobalHeap::setFreedKey)
    return p;
  }
  // top is above the bottom and above the low-water mark.
  MESH_FAST_PATH void* popFreedAt(ClassCache& c, void** top) {
    --top;
    c.freedTop.store(top, std::memory_order_relaxed);
    void* p = *top;
    if (p == nullptr) __builtin_unreachable();
    keyWord(p) = 0;
    return p;
  }
  MESH_FAST_PATH void pushSlot(int cls, uint32_t slot, void* ptr) {
    ClassCache& c = caches_[cls];
    uint32_t n = c.count.load(std::memory_order_relaxed);
    slots_[cls][n] = static_cast<uint8_t>(slot);
    slotPtrs_[cls][n] = ptr;
    c.count.store(n + 1, std::memory_order_relaxed);
    bump(c.frees, 1);
  }
  // Puts ptr (carrying key from now on) at top, below the stack's limit.
  MESH_FAST_PATH void stackAt(ClassCache& c, void** top, void* ptr, uint64_t key) {
    keyWord(ptr) = key;
    *top = ptr;
    c.freedTop.store(top + 1, std::memory_order_relaxed);
    bump(c.frees, 1);
  }
  // Slow-path views of the stack pointers as depths.
  uint32_t lowWaterCount(int cls) const { return static_cast<uint32_t>(caches_[cls].lowWater - freedBase(cls)); }
  // The bottom of class cls's freed stack (its row of freedStore_).
  MESH_FAST_PATH void** freedBase(int cls) { return freedStore_ + detail::kFreedRows.start[cls]; }
  MESH_FAST_PATH void* const* freedBase(int cls) const { return freedStore_ + detail::kFreedRows.start[cls]; }
  // Sets the depth; the low-water mark starts again from there.
  void setFreedCount(int cls, uint32_t n) {
    ClassCache& c = caches_[cls];
    c.freedTop.store(freedBase(cls) + n, std::memory_order_relaxed);
    c.lowWater = freedBase(cls) + n;
  }
  void setFreedCapacity(int cls, uint32_t cap) { caches_[cls].freedLimit = freedBase(cls) + cap; }
  static uint64_t& keyWord(void* p) { return static_cast<uint64_t*>(p)[1]; }
  // GlobalHeap::freedKeyFor, from a copy of the key in this heap (no load of the global heap on
  // the fast path).
  uint64_t keyFor(const void* p) const { return freedKey_ ^ reinterpret_cast<uintptr_t>(p); }
  // A stacked object's key was found on free: abort if it is stacked (a double free).
  MESH_SLOW_PATH void reportStackedFree(void* ptr);

  MESH_SLOW_PATH void* allocSlow(int cls);
  bool refill(int cls);
  // Randomizes the order of the whole free-slot array of class cls and fills in the addresses.
  void shuffle(int cls);
  void shuffleWindows(int cls, uint32_t count);
  static constexpr uint32_t kPlacementWindow = 8;

  // First, so that a class's cache is at this + cls * 64. The extra line (MiniHeap::
  // kSparseLine) is a stack that is always full and never popped.
  ClassCache caches_[kNumClasses + 1];
  static_assert(MiniHeap::kSparseLine == kNumClasses * kClassLineBytes);

 public:
  ThreadHeap* registryNext = nullptr;
  ThreadHeap* registryPrev = nullptr;
  // The owning thread's state in the layer that made this heap (entry/runtime.h: ThreadState),
  // and what the background thread remembers of the heap between looks (under the registry
  // lock): the activity it saw, since when it has not changed, and whether the cache was
  // returned since (see background.cc, returnCaches).
  void* ownerState = nullptr;
  uint64_t quietActivity = 0;
  uint64_t quietSinceNs = 0;
  bool quietReturned = false;

 private:
  GlobalHeap* global_;
  uint64_t freedKey_;
  int lane_;  // where the spans it detaches are listed, and where it looks first (SpanLists)
  uint32_t slowEvents_ = 0;
  uint64_t shuffledClasses_ = 0;  // bit cls: class cls's free slots were shuffled before
  static_assert(kNumClasses <= 64);
  int nextIdleVisit_ = 0;
  Rng rng_;
  // The attached span's free slots, as slot numbers (for the bitmap) and as addresses: malloc
  // returns an address it loads instead of one computed from the slot, so the chain from one
  // free to the next malloc is a store and a load.
  uint8_t slots_[kNumClasses][kMaxObjectsPerSpan];
  void* slotPtrs_[kNumClasses][kMaxObjectsPerSpan];
  void* freedStore_[detail::kFreedRows.start[kNumClasses]];  // stacked freed objects, by class
  // flushFreed's batch for the global heap (a member, not on the stack: a flush may run on a
  // signal handler's small alternate stack).
  void* flushBatch_[kMaxFreedPerClass];

  // Kept large blocks, oldest first, and their counters (written by the owner only).
  MiniHeap* large_[kLargeCacheEntries] = {};
  uint32_t largeCount_ = 0;
  std::atomic<uint64_t> largeKeptBytes_{0};
  std::atomic<uint64_t> largeHits_{0};     // allocations served from kept blocks
  std::atomic<uint64_t> largeKeeps_{0};    // frees that kept their block
  std::atomic<int64_t> largeBytes_{0};     // bytes handed out from kept blocks minus bytes kept
  std::atomic<uint64_t> sparseFrees_{0};
};

}  // namespace mesh
