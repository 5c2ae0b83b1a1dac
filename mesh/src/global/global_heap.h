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
#include "common/meta_memory.h"
#include "miniheap/miniheap.h"
#include "miniheap/page_entry.h"
#include "miniheap/size_classes.h"

namespace mesh {

struct HeapConfig {
  ArenaConfig arena;
};

struct ClassStats {
  uint64_t spans;         // live spans of this class (attached, partial and full)
  uint64_t partialSpans;  // detached spans neither full nor empty
  uint64_t liveObjects;   // objects in detached spans (attached spans are counted by threads)
  uint64_t capacity;      // slots in detached spans
};

struct HeapStats {
  uint64_t mhAllocCount;
  uint64_t mhFreeCount;
  uint64_t mhLive;
  uint64_t mhHighWater;
  uint64_t largeAllocs;
  uint64_t largeBytes;
  ArenaStats arena;
};

class GlobalHeap {
 public:
  GlobalHeap() = default;
  GlobalHeap(const GlobalHeap&) = delete;
  GlobalHeap& operator=(const GlobalHeap&) = delete;

  bool init(const HeapConfig& config);
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
  // Free of a small object by anyone but the span's owner. Lock-free except an occasional drain.
  void freeNonOwner(MiniHeap* mh, uint32_t slot, const void* ptr);
  // One object of class cls without a thread heap (exited threads, nested calls). nullptr = OOM.
  void* allocUnattached(int cls);

  // --- large objects --------------------------------------------------------------------------
  // bytes > 0; alignPages a power of two. nullptr when out of memory; *zeroed says whether the
  // memory is known to be zero.
  void* allocLarge(size_t bytes, size_t alignPages, bool* zeroed);
  void freeLarge(MiniHeap* mh, const void* ptr);
  // Shrinks a large object in place to newPages (>= 1) pages.
  void shrinkLarge(MiniHeap* mh, size_t newPages);

  // --- maintenance ----------------------------------------------------------------------------
  // Folds all queued remote frees, releases empty spans and returns dirty pages to the OS.
  size_t releaseFreeMemory();
  HeapStats stats();
  ClassStats classStats(int cls);

  // fork: lockAll before, unlockAll in the parent, resetAfterForkInChild in the child.
  void lockAll() MESH_NO_THREAD_SAFETY_ANALYSIS;
  void unlockAll() MESH_NO_THREAD_SAFETY_ANALYSIS;
  bool resetAfterForkInChild() MESH_NO_THREAD_SAFETY_ANALYSIS;

 private:
  static constexpr int kBins = 4;
  static constexpr uint32_t kDrainThreshold = 32;

  struct alignas(64) ClassState {
    Mutex lock;
    MiniHeap* partial[kBins] MESH_GUARDED_BY(lock) = {};
    uint64_t spans MESH_GUARDED_BY(lock) = 0;
    std::atomic<MiniHeap*> queue{nullptr};
    std::atomic<uint32_t> queued{0};
  };

  MiniHeap* newSpanLocked(int cls) MESH_REQUIRES(classes_[cls].lock);
  void drainLocked(int cls) MESH_REQUIRES(classes_[cls].lock);
  // Puts a detached span where it belongs: a partial bin, nowhere (full) or back to the arena.
  void relistLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  void unlinkLocked(ClassState& c, MiniHeap* mh);
  void releaseSpanLocked(MiniHeap* mh) MESH_REQUIRES(classes_[mh->sizeClassIndex()].lock);
  MiniHeap* newMiniHeap();
  void recycleMiniHeap(MiniHeap* mh);
  void setEntries(size_t page, size_t pages, MiniHeap* mh);

  Arena arena_;
  ClassState classes_[kNumClasses];
  Mutex metaLock_;
  MetaPool<MiniHeap> miniheaps_ MESH_GUARDED_BY(metaLock_);
  std::atomic<uint64_t> mhAllocs_{0};
  std::atomic<uint64_t> mhFrees_{0};
  std::atomic<uint64_t> mhHighWater_{0};
  std::atomic<uint64_t> largeAllocs_{0};
  std::atomic<uint64_t> largeBytes_{0};
  size_t largeReleaseBytes_ = size_t{16} << 20;
};

}  // namespace mesh
