// Arena: one reserved virtual range holding every span and large object, and the page map.
//
// The range is private anonymous memory (MAP_NORESERVE, no transparent huge pages), so fork
// copies it lazily like any other heap. With file backing (the default) a shared in-memory file
// as large as the range sits beside it, sparse, arena page N at file offset N * 4096; only spans
// that take part in a mesh are moved into it (the mesher maps their file pages over their
// virtual pages, and the virtual pages of the spans meshed into them onto the same file pages).
// The file is reached only through one shared view of all of it (view_): new mappings of its
// pages are duplicated from the view, pages are written through it and freed with
// MADV_REMOVE on it. No descriptor stays open, so nothing the application does with its file
// descriptors (closing them all, reusing numbers, listing them) can reach or reveal the heap.
// Without a file (none could be made, or MESH_NO_MEMFD=1) meshing is off.
//
// Invariant: pages on the free lists are anonymous. A span leaving the file is mapped anonymous
// again (unsharePages) and its file pages are punched before its pages come back here. Free
// page runs are kept in extents for reuse; "dirty" extents still hold physical pages, and once
// their total passes maxDirtyBytes they are returned to the OS with MADV_DONTNEED.
//
// Address space and commit charge. The range is reserved inaccessible and without commit charge
// (PROT_NONE) and made read-write in 4 MiB steps as the bump pointer reaches it, so a process is
// charged for what its heap uses, not for the reservation (vm.overcommit_memory=2 charges every
// writable private page). The page map is reserved readable (a read of an entry never written
// gives 0, "no object here", without charge) and made writable in step with the range. When the
// range is full it grows in place (the next addresses, reserved with MAP_FIXED_NOREPLACE) up to
// maxBytes: the first reservation is placed where there is room above it. Under strict
// overcommit, released runs of 64 pages and more are decommitted (their charge given back) and
// committed again when reused.
// Releases run without the arena lock (a discard takes time in proportion to the memory it
// frees, up to the whole heap): the extents being released are taken off the free lists and out
// of the dirty count under the lock, discarded with it dropped, and put back under it, clean (at
// the top of the used range: given back to fresh space), or dirty when the OS refused, so a
// failed release is never mistaken for zeroed memory. Meanwhile nobody else can take them, and a
// signal handler nested in the release finds the lock free. A fork while another thread is
// releasing leaves those pages off the child's free lists (address space lost to the child, no
// memory: the releasing thread does not exist there).
//
// The page map has one word per arena page; the miniheap layer stores its tagged pointers there.
// Thread safety: the page map is read without locks (relaxed atomics); everything else requires
// the arena lock, which is taken inside these functions (lock order: class lock -> arena lock).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/lock.h"
#include "common/meta_memory.h"
#include "platform/os.h"

namespace mesh {

inline constexpr size_t kNoPage = ~size_t{0};

inline constexpr size_t kStrictMaxDirtyBytes = size_t{64} << 20;

struct ArenaConfig {
  size_t reserveBytes = size_t{64} << 30;  // first reservation, halved until it succeeds
  size_t minReserveBytes = size_t{64} << 20;
  // The arena grows in pieces, in place, up to this (0: reserveBytes, no growth).
  size_t maxBytes = 0;
  size_t maxDirtyBytes = size_t{256} << 20;  // at most kStrictMaxDirtyBytes under strict overcommit
  bool useMemfd = true;
};

struct ArenaStats {
  size_t reservedBytes;
  size_t inUseBytes;    // pages handed out
  size_t dirtyBytes;    // free pages still backed by memory
  size_t releasedBytes; // returned to the OS since start
  bool memfd;
};

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  // Reserves the range; false only when not even minReserveBytes can be had.
  bool init(const ArenaConfig& config);

  // Allocates `pages` contiguous pages whose first page index is a multiple of alignPages (a
  // power of two). Returns the first page index, or kNoPage when the arena is full (errno is
  // not set here). *zeroed tells whether every page is known to read as zero.
  size_t allocPages(size_t pages, size_t alignPages, bool* zeroed);
  // The same, but gives up (kNoPage) instead of waiting when the arena lock is busy.
  size_t tryAllocPages(size_t pages, bool* zeroed);
  // Gives pages back. release=true returns the memory to the OS at once.
  void freePages(size_t page, size_t pages, bool release);
  // Returns every dirty page to the OS; returns the bytes released.
  size_t releaseDirty();
  // Decay, a pass at a regular interval (GlobalHeap::maybeDecay): returns to the OS the dirty
  // extents that an earlier pass saw (still free, so none was reused since) and marks the others
  // as seen by this pass. Releases stop once budgetNs passed; *more then says that extents to
  // release are left, and a call with newPass false continues the pass (it marks nothing).
  // Returns the bytes released.
  size_t releaseAgedDirty(uint64_t budgetNs, bool newPass, bool* more);
  // Off-thread release (MESH_FREEPHYS_THREAD): with a hook set, freePages never returns memory
  // to the OS itself. Where it would (release=true, or the dirty total past maxDirtyBytes) it
  // calls hook() under the arena lock instead; true means another thread will call
  // releaseDirty() soon, false makes freePages release as usual. nullptr turns it off.
  using ReleaseHook = bool (*)();
  void setReleaseHook(ReleaseHook hook) { releaseHook_.store(hook, std::memory_order_relaxed); }
  // Tests: replaces MADV_DONTNEED for releases (set before other threads use the arena).
  using DiscardFn = bool (*)(void* addr, size_t len);
  void setDiscardForTest(DiscardFn discard) { discard_ = discard; }
  // At most this many pages per madvise: the kernel delivers a signal only once the whole call is
  // done (it neither cuts it short nor restarts it), so bounded calls bound a handler's wait.
  static constexpr size_t kReleaseChunkPages = 1024;  // 4 MiB
  // Extents released per drop of the lock, and per decay budget check.
  static constexpr size_t kReleaseBatch = 64;

  char* base() const { return base_; }
  size_t pageCount() const { return pageCount_.load(std::memory_order_relaxed); }
  // True when meshing is possible (there is a memfd to move spans into).
  bool memfdBacked() const { return view_ != nullptr; }
  // The shared view of the whole file (nullptr without one): file page N is at view + N * 4096.
  char* fileView() const { return view_; }
  size_t reservedBytes() const { return reservedBytes_.load(std::memory_order_relaxed); }
  // Bytes of address space from base() the page map covers: a fixed bound (the growth limit),
  // so the free fast path compares with a constant. Entries past the range read as 0.
  size_t mappedBoundBytes() const { return mappedBoundBytes_; }
  // Bytes of the range made read-write so far (what strict overcommit charges, at most).
  size_t committedBytes();
  // Byte offset of p from the arena base; >= reservedBytes() when p is outside.
  size_t offsetOf(const void* p) const {
    return static_cast<size_t>(static_cast<const char*>(p) - base_);
  }
  bool contains(const void* p) const {
    return static_cast<size_t>(static_cast<const char*>(p) - base_) < reservedBytes();
  }
  size_t pageOf(const void* p) const {
    return static_cast<size_t>(static_cast<const char*>(p) - base_) >> os::kPageShift;
  }
  char* pageAddress(size_t page) const { return base_ + (page << os::kPageShift); }

  // Page map: one word per page; 0 means "no object starts here".
  uintptr_t mapEntry(size_t page) const { return pageMap_[page].load(std::memory_order_acquire); }
  void setMapEntry(size_t page, uintptr_t v) { pageMap_[page].store(v, std::memory_order_release); }
  // Sequentially consistent variants for the mesh/remote-free handshake (global_heap.cc).
  uintptr_t mapEntrySeqCst(size_t page) const { return pageMap_[page].load(std::memory_order_seq_cst); }
  void setMapEntrySeqCst(size_t page, uintptr_t v) { pageMap_[page].store(v, std::memory_order_seq_cst); }

  ArenaStats stats();

  // --- meshing primitives (memfd backing only) -----------------------------------------------
  // Maps the virtual pages [virtPage, +pages) onto the file pages [filePage, +pages), read-write
  // and shared (virtPage == filePage moves a span into the file at its own offset).
  bool aliasPages(size_t virtPage, size_t filePage, size_t pages);
  // Copies the contents of the virtual pages [page, +pages) to the file pages [filePage, +pages).
  // False (nothing changed) when the file's pages cannot be allocated.
  bool writeFilePages(size_t filePage, size_t page, size_t pages);
  // Makes [page, +pages) read-only (writable=false) or read-write again.
  // Fills the page tables of a range of file-backed pages (MADV_POPULATE_WRITE), so the program
  // does not fault them in one by one; a hint, failures are ignored.
  void prefaultPages(size_t page, size_t pages);
  bool protectPages(size_t page, size_t pages, bool writable);
  // Replaces [page, +pages) with fresh anonymous zero pages (whatever file pages were mapped
  // there are no longer referenced by this range).
  bool unsharePages(size_t page, size_t pages);
  // Frees the physical memory of file pages [filePage, +pages) (no virtual page may still be
  // used through them).
  bool releaseFilePages(size_t filePage, size_t pages);
  // Records that a remap gave back the anonymous memory of `pages` pages (for the statistics).
  void noteReleased(size_t pages);
  // Gives back pages that unsharePages just made fresh: they go on the free lists as zeroed.
  void freeUnsharedPages(size_t page, size_t pages);
  // Pages below this index have been handed out at least once (a bound for page-map walks).
  size_t usedPageBound();
  size_t usedPageBoundLocked() const MESH_REQUIRES(lock_) { return bump_; }

  // fork support. The parent holds the lock across fork. Before fork, with every write to the
  // file-backed ranges held off (they are read-only, under the write barrier), the parent makes
  // the child's file (prepareChildFile) and copies the file-backed spans' data into it
  // (copyToChildFile, for each span at its own offset). After fork the parent forgets that file
  // (dropChildFile); the child makes it its own (adoptChildFile) and maps its file-backed ranges
  // onto it again with aliasPages. The file is made before fork because no descriptor may be
  // free in the child; the copy is made before fork so that nothing a parent thread writes
  // after fork can reach the child. The anonymous rest of the arena needs nothing: fork copied
  // it (copy-on-write).
  void lockForFork() MESH_ACQUIRE(lock_) { lock_.lock(); }
  void unlockAfterFork() MESH_RELEASE(lock_) { lock_.unlock(); }
  // False when no file can be made (no memory): the child then cannot have private copies.
  bool prepareChildFile() MESH_REQUIRES(lock_);
  bool copyToChildFile(size_t page, size_t pages) MESH_REQUIRES(lock_);
  void dropChildFile() MESH_REQUIRES(lock_);
  void adoptChildFile() MESH_REQUIRES(lock_);

  // Calls f(page, pages, dirty) for every free extent (tests check what backs them).
  template <typename F>
  void forEachFreeExtentForTest(F&& f) {
    LockGuard guard(lock_);
    for (auto& bin : bins_) {
      for (Extent& e : bin) f(e.page, e.pages, e.dirty);
    }
    for (Extent& e : big_) f(e.page, e.pages, e.dirty);
  }

 private:
  struct Extent {
    size_t page;
    size_t pages;
    bool dirty;
    bool decommitted = false;  // inaccessible, uncharged (strict overcommit only)
    uint8_t seenInPass = 0;  // the decay pass that first saw it dirty and free (0: none yet)
  };
  // Under strict overcommit, runs at least this long are decommitted when released.
  static constexpr size_t kDecommitMinPages = 64;
  bool decommitsOnRelease(size_t pages) const { return strict_ && pages >= kDecommitMinPages; }
  void lowerCommittedLocked(size_t page) MESH_REQUIRES(lock_);
  static constexpr size_t kBins = 64;  // exact-size bins for 1..64 pages; larger in big_
  // Releases the pages of batch[0, n) (n <= kReleaseBatch), ok[i] saying whether extent i's
  // were: as many as possible per system call (os::discardAnonymousBatch, at most
  // kReleaseChunkPages per call), one by one where that is refused.
  void discardExtents(const Extent* batch, size_t n, bool* ok) const;

  size_t takeExtentLocked(size_t pages, bool* dirty) MESH_REQUIRES(lock_);
  size_t takeBumpLocked(size_t pages, bool* dirty) MESH_REQUIRES(lock_);
  size_t takeLocked(const Extent& e, size_t pages, bool* dirty) MESH_REQUIRES(lock_);
  size_t allocPagesLocked(size_t pages, size_t alignPages, bool* zeroed) MESH_REQUIRES(lock_);
  void putExtentLocked(size_t page, size_t pages, bool dirty, bool decommitted = false) MESH_REQUIRES(lock_);
  bool discardPages(size_t page, size_t pages) const;
  bool releaseRangeLocked(size_t page, size_t pages) MESH_REQUIRES(lock_);
  // These two drop the lock while the OS discards (see the class comment) and hold it again when
  // they return. Both return the pages released.
  size_t releaseBatchLocked(Extent* batch, size_t n) MESH_REQUIRES(lock_);
  size_t releaseAllDirtyLocked() MESH_REQUIRES(lock_);
  bool takeDirtyTopLocked(Extent* top) MESH_REQUIRES(lock_);
  bool coalesceLocked() MESH_REQUIRES(lock_);
  bool reserve(size_t bytes, size_t maxBytes);
  bool growLocked(size_t pages) MESH_REQUIRES(lock_);
  bool commitLocked(size_t endPage) MESH_REQUIRES(lock_);
  char* makeFileView(size_t bytes) const;

  Mutex lock_;
  char* base_ = nullptr;
  // Grown only under the lock; read without it (a pointer into new pages is only ever seen
  // after the allocation that handed them out).
  std::atomic<size_t> reservedBytes_{0};
  std::atomic<size_t> pageCount_{0};
  size_t maxPages_ = 0;       // growth limit (page map capacity and maxBytes)
  size_t mappedBoundBytes_ = 0;  // maxPages_ << kPageShift
  size_t committed_ MESH_GUARDED_BY(lock_) = 0;  // pages [0, committed_) are read-write
  size_t viewBytes_ = 0;       // size of the file and its view (spans beyond it cannot mesh)
  size_t childViewBytes_ = 0;
  bool strict_ = false;        // vm.overcommit_memory=2 at start-up
  char* view_ = nullptr;       // the shared file's view (see above); nullptr: no file
  char* childView_ = nullptr;  // fork: the file made for the child (see prepareChildFile)
  std::atomic<uintptr_t>* pageMap_ = nullptr;
  size_t bump_ MESH_GUARDED_BY(lock_) = 0;  // pages below bump_ have been handed out once
  size_t putsSinceCoalesce_ MESH_GUARDED_BY(lock_) = 0;  // extents freed since the last merge
  size_t extentsAtCoalesce_ MESH_GUARDED_BY(lock_) = 0;  // how many extents that merge left
  size_t maxDirtyPages_ = 0;
  size_t dirtyPages_ MESH_GUARDED_BY(lock_) = 0;
  size_t releaseRetryPages_ MESH_GUARDED_BY(lock_) = 0;  // back-off after failed releases
  size_t inUsePages_ MESH_GUARDED_BY(lock_) = 0;
  size_t releasedPages_ MESH_GUARDED_BY(lock_) = 0;
  MetaVector<Extent> bins_[kBins + 1];  // bins_[n] holds extents of exactly n pages
  MetaVector<Extent> big_;              // extents longer than kBins pages
  std::atomic<ReleaseHook> releaseHook_{nullptr};
  DiscardFn discard_ = os::discardAnonymous;
  uint8_t decayPass_ MESH_GUARDED_BY(lock_) = 1;  // the current decay pass, 1..255
};

}  // namespace mesh
