// GlobalHeap: the shared part of the allocator. Per size class it keeps the detached spans
// (partial ones binned by occupancy, fullest first), the queue of spans with pending remote
// frees, and hands spans to thread heaps. It also serves large objects directly from the arena.
// Meshing is done by its Mesher (meshing/mesher.h), which sees the span lists through the
// SpanLists interface that GlobalHeap implements.
//
// Lock order: mesher lock -> class lock -> arena lock -> metadata lock. No lock is held while
// calling into a thread heap.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "arena/arena.h"
#include "common/lock.h"
#include "common/meta_memory.h"
#include "meshing/mesher.h"
#include "meshing/span_lists.h"
#include "miniheap/miniheap.h"
#include "miniheap/page_entry.h"
#include "miniheap/size_classes.h"

namespace mesh {

struct HeapConfig {
  ArenaConfig arena;
  uint32_t meshProbes = 64;           // partners probed per span by the split mesher
  uint32_t meshMaxOccupancyPct = 80;  // fuller spans are not worth meshing
  long maxMapCount = 0;               // 0: read vm.max_map_count
  bool sameThreadMeshing = false;     // pair only spans last attached to one thread heap
  uint32_t sparsePct = 25;            // see GlobalHeap::setSparsePct
  uint64_t sparseMinFreeBytes = uint64_t{1} << 20;  // ... and relistLocked
  uint64_t freedKey = 0x6d65736866726565ull;  // marks freed objects (randomise per process)
};

struct ClassStats {
  uint64_t spans;         // live spans of this class (attached, partial and full)
  uint64_t partialSpans;  // detached spans neither full nor empty
  uint64_t liveObjects;   // objects in detached spans (attached spans are counted by threads)
  uint64_t capacity;      // slots in detached spans
  uint64_t meshes;        // meshes made in this class since start
  uint64_t meshableFree;  // free slots in the detached spans meshing would consider
};

// The mesher's figures (MeshStats) and the rest.
struct HeapStats : MeshStats {
  uint64_t mhAllocCount;
  uint64_t mhFreeCount;
  uint64_t mhLive;
  uint64_t mhHighWater;
  uint64_t largeAllocs;
  uint64_t largeBytes;
  uint64_t decayedBytes;  // released by maybeDecay
  ArenaStats arena;
};

// final: GlobalHeap's own calls of the SpanLists functions are direct calls.
class GlobalHeap final : private SpanLists {
 public:
  GlobalHeap() = default;
  GlobalHeap(const GlobalHeap&) = delete;
  GlobalHeap& operator=(const GlobalHeap&) = delete;

  bool init(const HeapConfig& config);
  // Process-wide random key that marks objects on a thread heap's freed stack.
  uint64_t freedKey() const { return freedKey_; }
  // Every freed small object carries the key (word 1, address-salted) from its free until it is
  // handed out again, whatever path it takes: a free of it meanwhile is a double free the fast
  // path sees without reading the span's remote bits. Stacks write it (ThreadHeap), and so does
  // every other free (freeNonOwnerPinned); every hand-out clears it (clearFreedKey).
  uint64_t freedKeyFor(const void* p) const { return freedKey_ ^ reinterpret_cast<uintptr_t>(p); }
  bool carriesFreedKey(const void* p) const { return static_cast<const uint64_t*>(p)[1] == freedKeyFor(p); }
  void setFreedKey(const void* p) const { const_cast<uint64_t*>(static_cast<const uint64_t*>(p))[1] = freedKeyFor(p); }
  static void clearFreedKey(void* p) { static_cast<uint64_t*>(p)[1] = 0; }
  Arena& arena() { return arena_; }
  const Arena& arena() const { return arena_; }

  // Page-map entry for p, 0 when p is outside the arena.
  uintptr_t entryFor(const void* p) const {
    return arena_.contains(p) ? arena_.mapEntry(arena_.pageOf(p)) : 0;
  }
  // Start of the span (virtual) that holds p, given p's page-map entry.
  char* spanStartFor(const void* p, uintptr_t entry) const {
    return arena_.pageAddress(arena_.pageOf(p) - entryPageInSpan(entry));
  }

  // --- spans for thread heaps ----------------------------------------------------------------
  // A span of class cls with at least one free slot, attached to owner, a thread of lane
  // (joinLane); its remote frees are folded. nullptr when out of memory. Which span: see
  // chooseListedLocked.
  MiniHeap* attach(int cls, void* owner, int lane = 0);
  // A new thread heap takes the lane with the fewest live threads (SpanLists); leaveLane when
  // it is retired.
  int joinLane();
  void leaveLane(int lane);
  // Thread heaps alive (those that joined a lane and did not leave it).
  uint32_t liveThreadHeaps() const {
    uint32_t n = 0;
    for (const auto& l : laneThreads_) n += l.load(std::memory_order_relaxed);
    return n;
  }

  // The owner gives the span back.
  void detach(MiniHeap* mh);
  // Returns ptr's miniheap "pinned": announced as in use by a remote free, so that a mesh
  // cannot move the page to another miniheap and nothing recycles it until unpin(). *entry is
  // the caller's reading of ptr's page-map entry and is updated to the stable one. nullptr (and
  // no pin) when the page has no miniheap: *entry then is 0 or kTombstoneEntry.
  MiniHeap* pin(const void* ptr, uintptr_t* entry);
  void unpin(MiniHeap* mh) { mh->unpin(); }
  // Free of a small object by anyone but the span's owner, mh pinned by the caller (this
  // unpins it). Lock-free except an occasional queue drain.
  void freeNonOwnerPinned(MiniHeap* mh, uint32_t slot, const void* ptr);
  // Frees a batch of objects of class cls (deferred frees of one thread) under one lock.
  // Pointers it cannot free as class-cls objects (invalid or already freed) are moved to the
  // front of ptrs and their number returned, for the caller to report through the unbatched
  // path; a free of a slot already clear in a detached span aborts here as a double free.
  // While a mesh step holds the class lock, the objects are freed one by one as remote frees
  // instead (no wait; freeBatchBesideStep).
  uint32_t freeBatch(int cls, void** ptrs, uint32_t n);
  // The same, pinning first (entry as for pin()).
  void freeNonOwner(const void* ptr, uintptr_t entry, uint32_t slot);
  // Whether the small object at slot of ptr's span is live (stable against a concurrent mesh).
  bool isLiveSmall(const void* ptr, uintptr_t entry, uint32_t slot);
  // One object of class cls without a thread heap (exited threads). nullptr = OOM.
  void* allocUnattached(int cls);
  // The same for a call nested in our own code (a signal handler): never waits for a lock and
  // takes no new pages, so it cannot deadlock; nullptr when that is not possible right now.
  void* allocUnattachedNested(int cls);

  // --- large objects --------------------------------------------------------------------------
  // bytes > 0; alignPages a power of two. nullptr when out of memory; *zeroed says whether the
  // memory is known to be zero.
  void* allocLarge(size_t bytes, size_t alignPages, bool* zeroed);
  void freeLarge(MiniHeap* mh, const void* ptr);
  // Returns a large block whose free was already recorded (remote bit 0 set by the thread cache
  // that held it) to the arena.
  void releaseLarge(MiniHeap* mh);
  // Allocations served by thread caches from blocks they held (counted into largeAllocs).
  void addLargeAllocs(uint64_t n) { largeAllocs_.fetch_add(n, std::memory_order_relaxed); }
  // Shrinks a large object in place to newPages (>= 1) pages.
  void shrinkLarge(MiniHeap* mh, size_t newPages);

  // --- meshing ------------------------------------------------------------------------------
  Mesher& mesher() { return mesher_; }
  // The entry points the allocation paths call (see Mesher).
  size_t maybeMesh(uint64_t periodNs) { return mesher_.maybeMesh(periodNs); }
  size_t meshAll() { return mesher_.meshAll(); }
  // Spans attached to thread heaps since start (one per refill): how busy the application is.
  uint64_t refillCount() const { return refills_.load(std::memory_order_relaxed); }

  // --- maintenance ----------------------------------------------------------------------------
  // Folds all queued remote frees, releases empty spans and returns dirty pages to the OS.
  size_t releaseFreeMemory();
  // Folds all queued remote frees (every class lock in turn), so detached spans are relisted and
  // empty ones released without returning any page to the OS.
  void drainAll();
  // Decay: free pages that stayed unused for about decayNs go back to the OS (a pass of Arena::
  // releaseAgedDirty every decayNs / 2). A call releases for about budgetNs, in slices of
  // kDecayStepNs (the arena lock is let go in between); what a pass could not release in its
  // call is released by the next calls, which do not wait for the next pass. Rate-limited and
  // safe to call from any thread at the top level; 0 disables. Returns the bytes released.
  size_t maybeDecay(uint64_t decayNs, uint64_t budgetNs = kDecayStepNs);
  static constexpr uint64_t kDecayStepNs = 1000000;
  HeapStats stats();
  ClassStats classStats(int cls);

  // fork (global/fork.cc; the handlers are in entry/fork_handlers.cc). Before fork: lockAll, then
  // prepareFork. After it, the parent calls finishForkInParent then unlockAll; the child calls
  // finishForkInChild, which also resets every lock. Meshed spans live in a shared file, which
  // fork would share between parent and child: prepareFork makes the child a file of its own
  // and copies their data into it while they are read-only (under the write barrier, so no
  // parent thread's write can land between the copy and fork), and the child maps its meshed
  // ranges onto that copy. False from prepareFork: no file could be made for the child (no
  // memory), and the child cannot have private copies; reserveForkFile, called before fork
  // from the fork() wrapper without any allocator lock held, makes that file ahead of time, so
  // that a fork that cannot be made safe fails with ENOMEM instead.
  bool reserveForkFile();
  void lockAll() MESH_NO_THREAD_SAFETY_ANALYSIS;
  bool prepareFork() MESH_NO_THREAD_SAFETY_ANALYSIS;
  void finishForkInParent() MESH_NO_THREAD_SAFETY_ANALYSIS;
  void unlockAll() MESH_NO_THREAD_SAFETY_ANALYSIS;
  bool finishForkInChild() MESH_NO_THREAD_SAFETY_ANALYSIS;
  bool forkNeedsFileCopy() const { return mesher_.hasFileBackedSpans(); }
  // Spans listed with fewer than pct percent of their slots live are sparse (MiniHeap::sparse)
  // if their class has sparseMinFreeBytes (HeapConfig) free in its partial spans; 0: none is.
  void setSparsePct(uint32_t pct) { sparsePct_.store(pct, std::memory_order_relaxed); }
  // Tests: the lock of class cls (whether a mesh step holds it).
  Mutex& classLockForTest(int cls) { return classes_[cls].lock; }
  // Tests: objects freeBatch freed as remote frees because a mesh step held their class lock.
  uint64_t besideStepFreesForTest() const { return besideStepFrees_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint32_t kDrainThreshold = 32;

  struct alignas(64) ClassState {
    Mutex lock;
    MiniHeap* partial[kLanes][kBins] MESH_GUARDED_BY(lock) = {};
    MiniHeap* partialTail[kLanes][kBins] MESH_GUARDED_BY(lock) = {};  // last span of each list
    uint64_t spans MESH_GUARDED_BY(lock) = 0;
    uint64_t meshes MESH_GUARDED_BY(lock) = 0;  // spans meshed away
    std::atomic<MiniHeap*> queue{nullptr};
    std::atomic<uint32_t> queued{0};
    // Sum of listedFree over the listed spans (written under the lock, read without it).
    std::atomic<uint64_t> meshableFree{0};
    std::atomic<bool> stepHolds{false};  // a mesh step holds the lock (its waiters are timed)
    std::atomic<uint32_t> appWaiters{0};  // application threads waiting for a step's lock
  };
  // Takes a class lock for an application thread; a wait for a mesh step is timed (the mesher's
  // lockWaits_).
  class MESH_SCOPED_CAPABILITY ClassLock {
   public:
    ClassLock(GlobalHeap& heap, ClassState& c) MESH_ACQUIRE(c.lock) : c_(c) {
      if (!c.lock.tryLock()) heap.lockContended(c);
    }
    ~ClassLock() MESH_RELEASE() { c_.lock.unlock(); }
    ClassLock(const ClassLock&) = delete;
    ClassLock& operator=(const ClassLock&) = delete;

   private:
    ClassState& c_;
  };
  void lockContended(ClassState& c) MESH_ACQUIRE(c.lock);

  // --- SpanLists: what the mesher may do to the lists (see meshing/span_lists.h) ---------------
  Mutex& classLock(int cls) override { return classes_[cls].lock; }
  void lockForStep(int cls) override MESH_ACQUIRE(classes_[cls].lock);
  void unlockAfterStep(int cls) override MESH_RELEASE(classes_[cls].lock);
  void drainLocked(int cls) override MESH_REQUIRES(classes_[cls].lock);
  MiniHeap* firstListedLocked(int cls, int lane, int bin) override MESH_REQUIRES(classes_[cls].lock) {
    return classes_[cls].partial[lane][bin];
  }
  void moveToTailLocked(int cls, MiniHeap* mh) override MESH_REQUIRES(classes_[cls].lock);
  void relistLocked(int cls, MiniHeap* mh) override MESH_REQUIRES(classes_[cls].lock) {
    relistLocked(mh);
  }
  void dropMeshedLocked(int cls, MiniHeap* src) override MESH_REQUIRES(classes_[cls].lock);
  void holdForMeshLocked(int cls, MiniHeap* mh) override MESH_REQUIRES(classes_[cls].lock);
  void giveBackFromMeshLocked(int cls, MiniHeap* mh) override MESH_REQUIRES(classes_[cls].lock);
  uint64_t spanCount(int cls) override;
  uint64_t meshableFree(int cls) const override {
    return classes_[cls].meshableFree.load(std::memory_order_relaxed);
  }

  uint32_t freeBatchBesideStep(int cls, void** ptrs, uint32_t n);
  // p's miniheap and slot (and page-map entry) when p starts a slot of a class-cls span, else
  // nullptr: what a batched free checks before it frees.
  MiniHeap* slotOfClass(int cls, const void* p, uintptr_t* entry, uint32_t* slot) const;
  MiniHeap* newSpanLocked(int cls, bool nonBlocking = false) MESH_REQUIRES(classes_[cls].lock);
  void* takeSlotLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  // Puts a detached span where it belongs: a partial bin, nowhere (full) or back to the arena.
  void relistLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  void unlinkLocked(ClassState& c, MiniHeap* mh);
  // The first span of the fullest non-empty partial list of lane (nullptr: none).
  static MiniHeap* fullestListedLocked(ClassState& c, int lane);
  // The same over every lane (the fullest bin first).
  static MiniHeap* fullestListedAnyLaneLocked(ClassState& c);
  // The listed span a thread of lane attaches (nullptr: none is listed, make a new one).
  MiniHeap* chooseListedLocked(int cls, int lane);
  // Updates mh's share of c.meshableFree for its live count (mh listed or about to be).
  void noteListedFreeLocked(ClassState& c, MiniHeap* mh, uint32_t live);
  void releaseSpanLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  // mh, released or meshed away, is no span any more: its miniheap is recycled (now, or by the
  // queue drain that pops it).
  void forget(MiniHeap* mh);
  MiniHeap* newMiniHeap(bool nonBlocking = false);
  void recycleMiniHeap(MiniHeap* mh);
  void setEntries(size_t page, size_t pages, MiniHeap* mh);
  // Calls f(virtPage, filePage, pages) for every range mapped onto the file (neighbouring
  // spans at their own offsets in one call); true when every call returned true. Every lock
  // is held (fork).
  template <typename F>
  bool forEachFileRangeLocked(F&& f) MESH_NO_THREAD_SAFETY_ANALYSIS;

  Arena arena_;
  uint64_t freedKey_ = 0;
  ClassState classes_[kNumClasses];
  Mutex metaLock_;
  MetaPool<MiniHeap> miniheaps_ MESH_GUARDED_BY(metaLock_);
  std::atomic<uint64_t> mhAllocs_{0};
  std::atomic<uint64_t> mhFrees_{0};
  std::atomic<uint64_t> mhHighWater_{0};
  std::atomic<uint64_t> besideStepFrees_{0};
  std::atomic<uint32_t> sparsePct_{0};
  uint64_t sparseMinFreeBytes_ = 0;
  std::atomic<uint64_t> largeAllocs_{0};
  std::atomic<uint64_t> largeBytes_{0};
  size_t largeReleaseBytes_ = size_t{16} << 20;

  Mesher mesher_{arena_, *this};
  std::atomic<uint64_t> refills_{0};
  std::atomic<uint32_t> laneThreads_[kLanes] = {};  // live thread heaps per lane
  std::atomic<uint64_t> lastDecayNs_{0};
  std::atomic<bool> decayUnfinished_{false};  // the last pass ran out of time
  std::atomic<uint64_t> decayedBytes_{0};
  bool forkCopied_ = false;  // prepareFork copied the file for the child (ranges read-only)
};

}  // namespace mesh
