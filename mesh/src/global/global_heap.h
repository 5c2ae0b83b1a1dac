// GlobalHeap: the shared part of the allocator. Per size class it keeps the detached spans
// (partial ones binned by occupancy, fullest first), the queue of spans with pending remote
// frees, and hands spans to thread heaps. It also serves large objects directly from the arena.
//
// Lock order: class lock -> arena lock -> metadata lock. No lock is held while
// calling into a thread heap.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "arena/arena.h"
#include "common/lock.h"
#include "common/pause_histogram.h"
#include "common/meta_memory.h"
#include "common/rng.h"
#include "miniheap/mesh_candidates.h"
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
  uint64_t freedKey = 0x6d65736866726565ull;  // marks freed objects (randomise per process)
};

// Classes of this size and larger never mesh (few objects per span, little to gain).
inline constexpr uint32_t kMaxMeshedObjectSize = 4096;

struct ClassStats {
  uint64_t spans;         // live spans of this class (attached, partial and full)
  uint64_t partialSpans;  // detached spans neither full nor empty
  uint64_t liveObjects;   // objects in detached spans (attached spans are counted by threads)
  uint64_t capacity;      // slots in detached spans
  uint64_t meshes;        // meshes made in this class since start
  uint64_t meshableFree;  // free slots in the detached spans meshing would consider
};

struct HeapStats {
  uint64_t mhAllocCount;
  uint64_t mhFreeCount;
  uint64_t mhLive;
  uint64_t mhHighWater;
  uint64_t largeAllocs;
  uint64_t largeBytes;
  uint64_t meshCount;
  uint64_t meshedBytesTotal;
  uint64_t meshedPages;     // virtual pages currently aliased onto other spans
  uint64_t meshedPagesHwm;
  uint64_t meshPauseMaxNs;  // longest time a class lock was held by one mesh step
  uint64_t meshPauseP99Ns;  // 99th percentile of those times (at most 25% high), 0 before any step
  uint64_t meshWaits;       // times an application thread waited for meshing (lock or barrier)
  uint64_t meshWaitMaxNs;   // the longest of those waits
  uint64_t meshWaitP99Ns;   // their 99th percentile (at most 25% high)
  uint64_t mappingEstimate;
  uint64_t mappingLimit;
  uint64_t fileBackedSpans;  // spans whose pages are in the memfd (mesh destinations)
  // Pacing (meshPaced, maybeDecay): what the automatic work did, apart from mesh_compact.
  uint64_t pacedMeshes;
  uint64_t pacedMeshedBytes;
  uint64_t pacedMeshNs;
  uint64_t decayedBytes;
  uint64_t meshableFreeBytes;  // free bytes in partly used spans meshing would consider
  ArenaStats arena;
};

class GlobalHeap {
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
  // A span of class cls with at least one free slot, attached to owner (its remote frees are
  // folded). nullptr when out of memory.
  MiniHeap* attach(int cls, void* owner);
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
  // Meshes spans of class cls, at most maxPairs meshes (0: no limit), holding the class lock for
  // at most about stepBudgetNs beyond the first mesh. Returns the meshes made.
  static constexpr uint64_t kStepBudgetNs = 1500000;
  static constexpr uint64_t kPacedStepBudgetNs = 500000;  // steps of the pacing: shorter pauses
  size_t meshClass(int cls, size_t maxPairs, uint64_t stepBudgetNs = kStepBudgetNs);
  // Full compaction: meshes every class until no pair is found. Returns the meshes made.
  size_t meshAll();
  // Rate-limited step from the free path: meshPaced for about 1 ms, at most once per periodNs
  // (0 disables), or four times as often while the gain is large (kEagerGainBytes). Returns the
  // meshes made.
  size_t maybeMesh(uint64_t periodNs);
  // Pacing driven by fragmentation: bounded mesh steps on the class with the most to win
  // (classGainBytes), then the next, until no class has a gain or budgetNs passed. A step that
  // finds nothing marks its class exhausted at its present meshable-free count, so it is tried
  // again only once that count grew by a useful amount. yieldBetween: sched_yield between steps
  // (a background thread lets waiting threads take the class lock first). Returns the meshes made.
  size_t meshPaced(uint64_t budgetNs, bool yieldBetween);
  // Bytes meshing might win now in class cls: its meshable-free bytes while it is being meshed,
  // which starts once they grew by a useful amount since its last futile step (0 otherwise).
  // Sum over the classes: meshGainBytes. Lock-free reads of per-class counters.
  uint64_t classGainBytes(int cls, uint64_t nowNs);
  uint64_t meshGainBytes();
  // Free bytes in detached, partly used spans of the classes that mesh, at an occupancy meshing
  // accepts: the memory meshing works on (lock-free, maintained as spans are listed).
  uint64_t meshableFreeBytes() const;
  // Spans attached to thread heaps since start (one per refill): how busy the application is.
  uint64_t refillCount() const { return refills_.load(std::memory_order_relaxed); }
  // Gains below this (or below 1/32 of the meshable-free bytes a futile step left) are not worth
  // a step, and a class is not tried again within kRetryNs of a futile step; at or above
  // kEagerGainBytes in all, the free path steps four times per period.
  static constexpr uint64_t kMinGainBytes = uint64_t{256} << 10;
  static constexpr uint64_t kRetryNs = 100000000;
  static constexpr uint64_t kEagerGainBytes = uint64_t{8} << 20;
  void setMaxMapCount(long limit) { maxMapCountOverride_.store(limit, std::memory_order_relaxed); }
  // Tests: holds class cls's lock as a mesh step does, for ns nanoseconds.
  void holdClassAsStepForTest(int cls, uint64_t ns);
  void setSameThreadMeshing(bool on) { sameThreadMeshing_.store(on, std::memory_order_relaxed); }

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

  // fork (global/fork.cc; the handlers are in entry/runtime.cc). Before fork: lockAll, then
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
  bool forkNeedsFileCopy() const { return fileSpans_.load(std::memory_order_relaxed) != 0; }

 private:
  static constexpr int kBins = 4;
  static constexpr uint32_t kDrainThreshold = 32;

  struct alignas(64) ClassState {
    Mutex lock;
    MiniHeap* partial[kBins] MESH_GUARDED_BY(lock) = {};
    MiniHeap* partialTail[kBins] MESH_GUARDED_BY(lock) = {};  // last span of each list
    uint64_t spans MESH_GUARDED_BY(lock) = 0;
    uint64_t meshes MESH_GUARDED_BY(lock) = 0;
    std::atomic<MiniHeap*> queue{nullptr};
    std::atomic<uint32_t> queued{0};
    // Sum of listedFree over the listed spans (written under the lock, read without it).
    std::atomic<uint64_t> meshableFree{0};
    // The pacing's memory of the class: meshableFree when a step last found nothing to mesh
    // (never above meshableFree), and when. Relaxed: a race costs one step too many or too few.
    std::atomic<uint64_t> exhaustedAt{0};
    std::atomic<uint64_t> exhaustedNs{0};
    std::atomic<bool> meshing{false};  // active: meshed until a step finds nothing
    std::atomic<bool> stepHolds{false};  // a mesh step holds the lock (its waiters are timed)
    std::atomic<uint32_t> appWaiters{0};  // application threads waiting for a step's lock
  };
  // Takes a class lock for an application thread; a wait for a mesh step is timed (lockWaits_).
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

  MiniHeap* newSpanLocked(int cls, bool nonBlocking = false) MESH_REQUIRES(classes_[cls].lock);
  void* takeSlotLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  void drainLocked(int cls) MESH_REQUIRES(classes_[cls].lock);
  // Moves a listed span to the end of its list (a mesh step's candidates that found no partner:
  // the next step looks at others first).
  void moveToTailLocked(ClassState& c, MiniHeap* mh) MESH_REQUIRES(c.lock);
  // Puts a detached span where it belongs: a partial bin, nowhere (full) or back to the arena.
  void relistLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  void unlinkLocked(ClassState& c, MiniHeap* mh);
  // Updates mh's share of c.meshableFree for its live count (mh listed or about to be).
  void noteListedFreeLocked(ClassState& c, MiniHeap* mh, uint32_t live);
  static void markExhausted(ClassState& c, uint64_t free, uint64_t nowNs);
  void releaseSpanLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  MiniHeap* newMiniHeap(bool nonBlocking = false);
  void recycleMiniHeap(MiniHeap* mh);
  void setEntries(size_t page, size_t pages, MiniHeap* mh);
  bool meshPairLocked(MiniHeap* dst, MiniHeap* src) MESH_REQUIRES(classes_[src->sizeClassIndex()].lock);
  bool besideFileBacked(const MiniHeap* mh) const;
  bool moveToFileLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  void releaseFileBackedLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  bool mappingBudgetAllows() MESH_REQUIRES(meshLock_);
  bool mappingRoomFor(long mappings) const MESH_REQUIRES(meshLock_);
  void refreshMappingLimits() MESH_REQUIRES(meshLock_);
  size_t findPairsPerOwnerLocked(uint32_t n) MESH_REQUIRES(meshLock_);
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
  std::atomic<uint64_t> largeAllocs_{0};
  std::atomic<uint64_t> largeBytes_{0};
  size_t largeReleaseBytes_ = size_t{16} << 20;

  // Meshing state. meshLock_ serialises mesh passes (it is taken before a class lock) and
  // guards the scratch arrays.
  Mutex meshLock_;
  Rng meshRng_ MESH_GUARDED_BY(meshLock_){0x5eed5eedull};
  MetaVector<MiniHeap*> meshCandidates_ MESH_GUARDED_BY(meshLock_);
  MetaVector<SpanBits> meshBits_ MESH_GUARDED_BY(meshLock_);
  MetaVector<uint32_t> meshOrder_ MESH_GUARDED_BY(meshLock_);
  MetaVector<bool> meshUsed_ MESH_GUARDED_BY(meshLock_);
  MetaVector<MeshPair> meshPairs_ MESH_GUARDED_BY(meshLock_);
  uint32_t meshProbes_ = 64;
  uint32_t meshMaxOccupancyPct_ = 80;
  std::atomic<uint64_t> lastMeshNs_{0};
  std::atomic<long> maxMapCountOverride_{0};
  std::atomic<bool> sameThreadMeshing_{false};
  long mapLimit_ MESH_GUARDED_BY(meshLock_) = 0;
  long mapSoftLimit_ MESH_GUARDED_BY(meshLock_) = 0;  // beyond this estimate: count again
  long mapHardLimit_ MESH_GUARDED_BY(meshLock_) = 0;  // beyond this estimate: no meshing
  long mapMeasured_ MESH_GUARDED_BY(meshLock_) = -1;   // /proc/self/maps lines at last count
  long mapAddedSince_ MESH_GUARDED_BY(meshLock_) = 0;  // mappings meshes may have added since
  long mapAddedAtCountStart_ MESH_GUARDED_BY(meshLock_) = 0;
  os::MapsCounter mapCounter_ MESH_GUARDED_BY(meshLock_);  // a count in progress
  bool meshingBroken_ = false;  // the write barrier could not be installed
  std::atomic<uint64_t> meshCount_{0};
  std::atomic<uint64_t> meshedBytesTotal_{0};
  std::atomic<uint64_t> meshedPages_{0};
  std::atomic<uint64_t> meshedPagesHwm_{0};
  PauseHistogram meshSteps_;  // how long each mesh step held its class lock
  PauseHistogram lockWaits_;  // how long application threads waited for a class lock a step held
  std::atomic<uint64_t> fileSpans_{0};  // miniheaps with fileBacked() set
  std::atomic<uint64_t> refills_{0};
  std::atomic<uint64_t> pacedMeshes_{0};
  std::atomic<uint64_t> pacedMeshedBytes_{0};
  std::atomic<uint64_t> pacedMeshNs_{0};
  std::atomic<size_t> pacedPairs_{16};  // meshes a paced step may make (2..16, adapts)
  std::atomic<uint64_t> lastDecayNs_{0};
  std::atomic<bool> decayUnfinished_{false};  // the last pass ran out of time
  std::atomic<uint64_t> decayedBytes_{0};
  bool forkCopied_ = false;  // prepareFork copied the file for the child (ranges read-only)
};

}  // namespace mesh
