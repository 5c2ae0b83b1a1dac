// Mesher: where meshes happen. It decides when and what to mesh (pacing, probes, the highest
// occupancy worth meshing, the mapping budget), finds pairs of spans whose live objects do not
// overlap (meshing/mesh_candidates.h), and merges each pair onto one set of physical pages under
// the write barrier (meshing/write_barrier.h, meshing/write_protect.h). It works on the global
// heap's span lists through the narrow SpanLists interface (meshing/span_lists.h), and keeps its
// scratch space in metadata memory, so a mesh never calls malloc.
//
// Lock order: the mesher lock, then a class lock (a step holds both), then the arena lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "arena/arena.h"
#include "common/lock.h"
#include "common/meta_memory.h"
#include "common/pause_histogram.h"
#include "common/rng.h"
#include "meshing/mapping_budget.h"
#include "meshing/mesh_candidates.h"
#include "meshing/span_lists.h"
#include "miniheap/miniheap.h"
#include "miniheap/size_classes.h"

namespace mesh {

// Classes of this size and larger never mesh (few objects per span, little to gain).
inline constexpr uint32_t kMaxMeshedObjectSize = 4096;

// The mesher's statistics (part of HeapStats).
struct MeshStats {
  uint64_t meshCount;
  uint64_t meshedBytesTotal;
  uint64_t meshedPages;  // virtual pages currently aliased onto other spans
  uint64_t meshedPagesHwm;
  uint64_t meshPauseMaxNs;  // longest time a class lock was held by one mesh step
  uint64_t meshPauseP99Ns;  // 99th percentile of those times (at most 25% high), 0 before any step
  uint64_t meshWaits;       // times an application thread waited for meshing (lock or barrier)
  uint64_t meshWaitMaxNs;   // the longest of those waits
  uint64_t meshWaitP99Ns;   // their 99th percentile (at most 25% high)
  uint64_t mappingEstimate;
  uint64_t mappingLimit;
  uint64_t fileBackedSpans;  // spans whose pages are in the memfd (mesh destinations)
  // Pacing (meshPaced): what the automatic meshing did, apart from mesh_compact.
  uint64_t pacedMeshes;
  uint64_t pacedMeshedBytes;
  uint64_t pacedMeshNs;
  uint64_t meshableFreeBytes;  // free bytes in partly used spans meshing would consider
};

class Mesher {
 public:
  Mesher(Arena& arena, SpanLists& lists) : arena_(arena), lists_(lists) {}
  Mesher(const Mesher&) = delete;
  Mesher& operator=(const Mesher&) = delete;

  // probes: partners probed per span by the split mesher; maxOccupancyPct: fuller spans are not
  // worth meshing; maxMapCount: 0 reads vm.max_map_count; sameThread: pair only spans last
  // attached to one thread heap.
  void init(uint32_t probes, uint32_t maxOccupancyPct, long maxMapCount, bool sameThread);

  // --- meshing --------------------------------------------------------------------------------
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
  // Gains below this (or below 1/32 of the meshable-free bytes a futile step left) are not worth
  // a step, and a class is not tried again within kRetryNs of a futile step; at or above
  // kEagerGainBytes in all, the free path steps four times per period.
  static constexpr uint64_t kMinGainBytes = uint64_t{256} << 10;
  static constexpr uint64_t kRetryNs = 100000000;
  static constexpr uint64_t kEagerGainBytes = uint64_t{8} << 20;
  // An atomic store: the budget's limit needs no lock.
  void setMaxMapCount(long limit) MESH_NO_THREAD_SAFETY_ANALYSIS { budget_.setMaxMapCount(limit); }
  void setSameThreadMeshing(bool on) { sameThreadMeshing_.store(on, std::memory_order_relaxed); }

  // --- for the span lists ---------------------------------------------------------------------
  // Whether the free slots of a listed span with `live` objects count as meshable (the occupancy
  // test of a mesh step).
  bool considers(const MiniHeap* mh, uint32_t live) const {
    return mh->objectSize() < kMaxMeshedObjectSize &&
           live * 100 <= mh->objectCount() * maxOccupancyPct_;
  }
  // A file-backed span is being released (it is empty; its page-map entries are cleared): maps
  // it and each virtual span meshed into it anonymous again, punches its file pages and returns
  // all of them to the arena as zeroed pages. classLock is the lock of mh's class.
  void releaseFileBackedLocked(MiniHeap* mh, Mutex& classLock) MESH_REQUIRES(classLock);
  // An application thread waited ns for a class lock a mesh step held.
  void noteStepWait(uint64_t ns) { lockWaits_.record(ns); }
  MeshStats stats();
  // Whether any span is in the memory file (fork must then copy the file for the child).
  bool hasFileBackedSpans() const { return fileSpans_.load(std::memory_order_relaxed) != 0; }

  // --- fork (global/fork.cc) ------------------------------------------------------------------
  // No mesh runs between lockForFork and unlockAfterFork; the child calls resetInChild instead.
  void lockForFork() MESH_ACQUIRE(lock_) { lock_.lock(); }
  void unlockAfterFork() MESH_RELEASE(lock_) { lock_.unlock(); }
  void resetInChild() MESH_NO_THREAD_SAFETY_ANALYSIS;

  // Tests: holds class cls's lock as a mesh step does, for ns nanoseconds; *holding (if given)
  // becomes true once the lock is held.
  void holdClassAsStepForTest(int cls, uint64_t ns, std::atomic<bool>* holding = nullptr);
  // Tests: called after each mesh a step made, while the step holds no class lock.
  using MeshedHook = void (*)(void* arg, int cls, MiniHeap* dst, MiniHeap* src);
  void setMeshedHookForTest(MeshedHook hook, void* arg) {
    meshedHook_ = hook;
    meshedHookArg_ = arg;
  }

 private:
  // The pacing's memory of a class: meshableFree when a step last found nothing to mesh (never
  // above meshableFree), and when; and whether the class is being meshed until a step finds
  // nothing. Relaxed: a race costs one step too many or too few.
  struct ClassPacing {
    std::atomic<uint64_t> exhaustedAt{0};
    std::atomic<uint64_t> exhaustedNs{0};
    std::atomic<bool> active{false};
  };
  bool canMesh() const { return !broken_ && arena_.memfdBacked(); }
  // A pair a step meshes: its two spans are held (SpanLists::holdForMeshLocked) from
  // selectPairsLocked until the step gives them back.
  struct HeldPair {
    MiniHeap* dst;
    MiniHeap* src;
    bool meshed;
  };
  // Chooses up to maxPairs pairs of class cls (0: no limit) and holds their spans in held_.
  // Returns the number of pairs.
  size_t selectPairsLocked(int cls, size_t maxPairs, uint64_t stepBudgetNs)
      MESH_REQUIRES(lock_, lists_.classLock(cls));
  size_t collectCandidatesLocked(int cls, size_t maxCandidates)
      MESH_REQUIRES(lock_, lists_.classLock(cls));
  size_t findPairsPerOwnerLocked(uint32_t n) MESH_REQUIRES(lock_);
  bool meshPairUnlocked(MiniHeap* dst, MiniHeap* src) MESH_REQUIRES(lock_);
  void finishMeshLocked(int cls, MiniHeap* dst, MiniHeap* src) MESH_REQUIRES(lock_, lists_.classLock(cls));
  bool moveToFileLocked(MiniHeap* mh) MESH_REQUIRES(lock_);
  bool besideFileBacked(const MiniHeap* mh) const;
  void countMesh(size_t pages);
  void markExhausted(int cls, uint64_t free, uint64_t nowNs);

  Arena& arena_;
  SpanLists& lists_;
  // Serialises mesh steps (taken before a class lock) and guards the scratch arrays.
  Mutex lock_;
  Rng rng_ MESH_GUARDED_BY(lock_){0x5eed5eedull};
  MetaVector<MiniHeap*> candidates_ MESH_GUARDED_BY(lock_);
  MetaVector<SpanBits> bits_ MESH_GUARDED_BY(lock_);
  MetaVector<uint32_t> order_ MESH_GUARDED_BY(lock_);
  MetaVector<bool> used_ MESH_GUARDED_BY(lock_);
  MetaVector<MeshPair> pairs_ MESH_GUARDED_BY(lock_);
  MetaVector<uint64_t> columns_ MESH_GUARDED_BY(lock_);  // the fullest-first search's bitsets
  MetaVector<uint8_t> chain_ MESH_GUARDED_BY(lock_);     // virtual spans each candidate backs
  MetaVector<HeldPair> held_ MESH_GUARDED_BY(lock_);
  MappingBudget budget_ MESH_GUARDED_BY(lock_);
  uint32_t probes_ = 64;
  uint32_t maxOccupancyPct_ = 80;
  std::atomic<bool> sameThreadMeshing_{false};
  bool broken_ = false;  // the write barrier could not be installed
  ClassPacing pacing_[kNumClasses];
  std::atomic<uint64_t> lastMeshNs_{0};
  std::atomic<size_t> pacedPairs_{16};  // meshes a paced step may make (2..16, adapts)
  std::atomic<uint64_t> meshCount_{0};
  std::atomic<uint64_t> meshedBytesTotal_{0};
  std::atomic<uint64_t> meshedPages_{0};
  std::atomic<uint64_t> meshedPagesHwm_{0};
  std::atomic<uint64_t> fileSpans_{0};  // miniheaps with fileBacked() set
  std::atomic<uint64_t> pacedMeshes_{0};
  std::atomic<uint64_t> pacedMeshedBytes_{0};
  std::atomic<uint64_t> pacedMeshNs_{0};
  PauseHistogram steps_;      // how long a mesh step held its class lock (twice a step: choose, give back)
  MeshedHook meshedHook_ = nullptr;
  void* meshedHookArg_ = nullptr;
  PauseHistogram lockWaits_;  // how long application threads waited for a class lock a step held
};

}  // namespace mesh
