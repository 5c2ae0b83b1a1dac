// Meshing: the GlobalHeap operations that merge two spans of one size class onto one set of
// physical pages. Candidate search is in miniheap/mesh_candidates.h, the write barrier in
// global/write_barrier.h; this file holds the policy and the mesh operation itself.
//
// Spans live in private anonymous memory until they take part in a mesh (fork then copies them
// lazily); the memfd only holds mesh destinations, each at its own arena offset.
//
// The mesh of src into dst (both detached, live bitmaps disjoint), under the class lock:
//   1. barrier on (writers to a read-only span fault and wait in the handler until 7)
//   2. if dst is still anonymous, move it into the file: dst read-only, its pages written to its
//      file pages (one pwrite), the file pages mapped over dst (read-write again)
//   3. src's virtual pages read-only
//   4. copy src's live objects to the same offsets in dst (dst's slots there are free)
//   5. map src's virtual pages onto dst's file pages (read-write again; src's anonymous pages
//      are dropped by the kernel)
//   6. barrier off
//   7. dst takes src's live bits, then the page map of src's pages points to dst
//   8. wait until no remote free is between its announcement and its end on src, move src's
//      remote frees to dst (see GlobalHeap::freeNonOwner for the handshake)
//   9. if src was itself file-backed, punch its old file pages
// Any failure undoes the step that failed and skips the pair; a dst already moved into the file
// stays there (it is a valid file-backed span without extra spans).
//
// When a file-backed span is released, it and every span meshed into it are mapped anonymous
// again and its file pages are punched, so the arena's free lists only ever hold anonymous pages.
#include <cstring>

#include "common/log.h"
#include "global/global_heap.h"
#include "global/write_barrier.h"

namespace mesh {

void GlobalHeap::recordPause(uint64_t ns) {
  uint64_t prev = meshPauseMaxNs_.load(std::memory_order_relaxed);
  while (ns > prev && !meshPauseMaxNs_.compare_exchange_weak(prev, ns)) {
  }
}

// Mappings one mesh can add: mapping src's range onto the file splits its mapping in up to
// three, and so does moving an anonymous dst into the file (adjacent file-backed spans at
// contiguous offsets merge, so the real count is often lower).
static constexpr long kMappingsPerMesh = 4;

// True while meshing may add mappings: keeps a reserve below vm.max_map_count for the
// application. Counting /proc/self/maps is expensive, so the count is an estimate (last count
// plus what each mesh may have added since) that is measured again only when it gets close to
// the limit.
bool GlobalHeap::mappingBudgetAllows() {
  long limit = maxMapCountOverride_.load(std::memory_order_relaxed);
  if (limit <= 0) limit = os::readLongFile("/proc/sys/vm/max_map_count", 65530);
  mapLimit_ = limit;
  long reserve = limit / 8 > 1024 ? limit / 8 : (limit > 2048 ? 1024 : limit / 2);
  if (mapMeasured_ < 0 || mapMeasured_ + mapAddedSince_ + kMappingsPerMesh > limit - reserve) {
    long count = os::mappingCount();
    if (count < 0) return false;
    mapMeasured_ = count;
    mapAddedSince_ = 0;
  }
  return mapMeasured_ + mapAddedSince_ + kMappingsPerMesh <= limit - reserve;
}

// Step 2 of the mesh: moves the anonymous span mh into the memfd at its own offset, keeping its
// contents. The barrier must be on: writers of mh wait while it is read-only. False (mh
// unchanged and writable) on failure. The whole span is written with one pwrite: copying only
// the live objects through a temporary shared window costs two more system calls and a page
// fault per page, and made compaction about 25% slower on the fragmenter.
bool GlobalHeap::moveToFileLocked(MiniHeap* mh) {
  size_t page = mh->spanPage(), pages = mh->pages();
  if (!arena_.protectPages(page, pages, false)) return false;
  bool ok = arena_.writeFilePages(page, page, pages) && arena_.aliasPages(page, page, pages);
  if (!ok) {
    if (!arena_.protectPages(page, pages, true)) fatal("could not undo a failed mesh");
    return false;
  }
  mh->setFileBacked(true);
  fileSpans_.fetch_add(1, std::memory_order_relaxed);
  mapAddedSince_ += 2;
  return true;
}

// Whether a virtual neighbour of mh's span is a file-backed span at its own offset: moving mh
// into the file then extends that mapping instead of splitting an anonymous one (two mappings
// fewer). A hint: the neighbour may belong to another class and change meanwhile.
bool GlobalHeap::besideFileBacked(const MiniHeap* mh) const {
  auto ownFileBacked = [&](size_t page) {
    uintptr_t e = arena_.mapEntry(page);
    const MiniHeap* n = entryMiniHeap(e);
    return n != nullptr && !n->isLarge() && n->fileBacked() && page - entryPageInSpan(e) == n->spanPage();
  };
  size_t first = mh->spanPage(), end = first + mh->pages();
  return (first > 0 && ownFileBacked(first - 1)) || (end < arena_.pageCount() && ownFileBacked(end));
}

bool GlobalHeap::meshPairLocked(MiniHeap* dst, MiniHeap* src) {
  dst->foldRemote();
  src->foldRemote();
  SpanBits a, b;
  dst->copyLiveBits(a.w);
  src->copyLiveBits(b.w);
  if (!bitsDisjoint(a, b) || src->isEmpty() || dst->extraSpanCount() == kMaxExtraSpans) return false;
  size_t srcPage = src->spanPage(), pages = src->pages();

  barrier::begin();
  if (!dst->fileBacked() && !moveToFileLocked(dst)) {
    barrier::end();
    return false;
  }
  if (!arena_.protectPages(srcPage, pages, false)) {
    barrier::end();
    return false;
  }
  uint32_t size = src->objectSize();
  for (int w = 0; w < 4; ++w) {
    for (uint64_t bits = b.w[w]; bits != 0; bits &= bits - 1) {
      uint32_t slot = static_cast<uint32_t>(w * 64 + __builtin_ctzll(bits));
      std::memcpy(dst->slotAddress(slot), src->slotAddress(slot), size);
    }
  }
  if (!arena_.aliasPages(srcPage, dst->spanPage(), pages)) {
    // Nothing changed for src: its pages still hold its objects. Make them writable again.
    if (!arena_.protectPages(srcPage, pages, true)) fatal("could not undo a failed mesh");
    barrier::end();
    return false;
  }
  barrier::end();

  dst->absorbLive(*src);
  for (size_t i = 0; i < pages; ++i) arena_.setMapEntrySeqCst(srcPage + i, encodeEntry(dst, i));
  while (src->remoteFreeInFlight()) os::yieldThread();
  dst->absorbRemote(*src);
  dst->foldRemote();
  dst->addExtraSpan(srcPage);
  // The remap dropped src's anonymous pages; file pages of a file-backed src must be punched.
  if (src->fileBacked()) {
    arena_.releaseFilePages(srcPage, pages);
    src->setFileBacked(false);
    fileSpans_.fetch_sub(1, std::memory_order_relaxed);
  } else {
    arena_.noteReleased(pages);
  }
  mapAddedSince_ += 2;

  ClassState& c = classes_[src->sizeClassIndex()];
  unlinkLocked(c, src);
  --c.spans;
  ++c.meshes;
  src->alive = false;
  if (src->markQueued()) recycleMiniHeap(src);  // else the queue drain recycles it
  relistLocked(dst);

  meshCount_.fetch_add(1, std::memory_order_relaxed);
  meshedBytesTotal_.fetch_add(pages << os::kPageShift, std::memory_order_relaxed);
  uint64_t now = meshedPages_.fetch_add(pages, std::memory_order_relaxed) + pages;
  uint64_t hwm = meshedPagesHwm_.load(std::memory_order_relaxed);
  while (now > hwm && !meshedPagesHwm_.compare_exchange_weak(hwm, now)) {
  }
  return true;
}

// A file-backed span is being released (it is empty; its page-map entries are cleared): map it
// and each virtual span meshed into it anonymous again, punch its file pages and return all of
// them to the arena as zeroed pages. A range whose mapping cannot be replaced is left out of the
// arena for good (a virtual leak, never a file page on the free lists).
void GlobalHeap::releaseFileBackedLocked(MiniHeap* mh) {
  size_t pages = mh->pages();
  for (uint32_t i = 0; i < mh->extraSpanCount(); ++i) {
    size_t page = mh->extraSpan(i);
    setEntries(page, pages, nullptr);
    meshedPages_.fetch_sub(pages, std::memory_order_relaxed);
    if (arena_.unsharePages(page, pages)) arena_.freeUnsharedPages(page, pages);
  }
  size_t own = mh->spanPage();
  bool unshared = arena_.unsharePages(own, pages);
  arena_.releaseFilePages(own, pages);
  if (unshared) arena_.freeUnsharedPages(own, pages);
  mh->setFileBacked(false);
  fileSpans_.fetch_sub(1, std::memory_order_relaxed);
}

size_t GlobalHeap::meshClass(int cls, size_t maxPairs) {
  if (meshingBroken_ || !arena_.memfdBacked() || sizeClass(cls).size >= kMaxMeshedObjectSize) return 0;
  LockGuard meshGuard(meshLock_);
  if (!barrier::install(arena_.base(), arena_.pageCount() << os::kPageShift)) {
    meshingBroken_ = true;
    return 0;
  }
  if (!mappingBudgetAllows()) return 0;
  ClassState& c = classes_[cls];
  LockGuard guard(c.lock);
  uint64_t start = os::monotonicNs();
  drainLocked(cls);
  // At most kMaxCandidates spans per step keep the search (and so the pause) bounded; emptier
  // spans come first (lower bins), which is where meshing frees the most.
  constexpr size_t kMaxCandidates = 2048;
  meshCandidates_.clear();
  for (MiniHeap* list : c.partial) {
    for (MiniHeap* mh = list; mh != nullptr && meshCandidates_.size() < kMaxCandidates; mh = mh->next) {
      if (mh->liveCount() * 100 > mh->objectCount() * meshMaxOccupancyPct_) continue;
      if (!meshCandidates_.pushBack(mh)) break;
    }
  }
  uint32_t n = static_cast<uint32_t>(meshCandidates_.size());
  if (n < 2 || !meshBits_.resize(n) || !meshOrder_.resize(n) || !meshUsed_.resize(n) ||
      !meshPairs_.resize(n / 2)) {
    return 0;
  }
  for (uint32_t i = 0; i < n; ++i) meshCandidates_[i]->copyLiveBits(meshBits_[i].w);
  size_t limit = maxPairs == 0 ? n / 2 : maxPairs;
  size_t pairs = findMeshPairs(meshBits_.begin(), n, meshRng_, meshProbes_, meshOrder_.begin(),
                               meshUsed_.begin(), meshPairs_.begin(), limit);
  size_t made = 0;
  for (size_t i = 0; i < pairs; ++i) {
    MiniHeap* a = meshCandidates_[meshPairs_[i].a];
    MiniHeap* b = meshCandidates_[meshPairs_[i].b];
    // The source must be a single span. The destination is the one with extra spans, else one
    // already in the memfd (no move needed), else the one with more objects.
    if (a->extraSpanCount() > 0 && b->extraSpanCount() > 0) continue;
    bool aIsDst;
    if (a->extraSpanCount() != b->extraSpanCount()) aIsDst = a->extraSpanCount() > 0;
    else if (a->fileBacked() != b->fileBacked()) aIsDst = a->fileBacked();
    else if (!a->fileBacked() && besideFileBacked(a) != besideFileBacked(b)) aIsDst = besideFileBacked(a);
    else aIsDst = a->liveCount() >= b->liveCount();
    MiniHeap* dst = aIsDst ? a : b;
    MiniHeap* src = aIsDst ? b : a;
    if (mapMeasured_ + mapAddedSince_ + kMappingsPerMesh > mapLimit_ - mapLimit_ / 8 &&
        !mappingBudgetAllows()) {
      break;
    }
    if (meshPairLocked(dst, src)) ++made;
  }
  recordPause(os::monotonicNs() - start);
  return made;
}

size_t GlobalHeap::meshAll() {
  constexpr size_t kPairsPerStep = 16;  // bounds how long one class lock is held
  constexpr int kMaxPasses = 16;        // meshed spans can mesh again, a little fuller each time
  size_t total = 0;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    size_t made = 0;
    for (int cls = 0; cls < kNumClasses; ++cls) {
      for (;;) {
        size_t step = meshClass(cls, kPairsPerStep);
        made += step;
        if (step < kPairsPerStep) break;
      }
    }
    total += made;
    if (made == 0) break;
  }
  return total;
}

size_t GlobalHeap::maybeMesh(uint64_t periodNs) {
  if (periodNs == 0 || meshingBroken_ || !arena_.memfdBacked()) return 0;
  uint64_t now = os::monotonicNs();
  uint64_t last = lastMeshNs_.load(std::memory_order_relaxed);
  if (now - last < periodNs || !lastMeshNs_.compare_exchange_strong(last, now)) return 0;
  int cls;
  {
    LockGuard guard(meshLock_);
    cls = nextMeshClass_;
    do {
      nextMeshClass_ = (nextMeshClass_ + 1) % kNumClasses;
    } while (sizeClass(nextMeshClass_).size >= kMaxMeshedObjectSize);
  }
  return meshClass(cls, 16);
}

// In a fork child, once the arena has a private copy of the memfd: map every file-backed span
// (at its own offset; neighbours in one call) and every virtual span meshed into one onto the
// copy. The anonymous rest of the arena is left alone. Every lock is held (lockAll).
bool GlobalHeap::remapFileBackedInChild() {
  size_t bound = arena_.usedPageBoundLocked();
  size_t runStart = 0, runEnd = 0;  // file-backed spans not mapped yet, contiguous
  bool ok = true;
  for (size_t page = 0; page < bound;) {
    uintptr_t e = arena_.mapEntry(page);
    MiniHeap* mh = entryMiniHeap(e);
    if (mh == nullptr || entryPageInSpan(e) != 0) {
      ++page;
      continue;
    }
    size_t pages = mh->pages();
    if (mh->isLarge() || !mh->fileBacked()) {
      page += pages;
      continue;
    }
    if (page != mh->spanPage()) {
      ok = arena_.aliasPages(page, mh->spanPage(), pages) && ok;  // meshed into mh
    } else if (page == runEnd) {
      runEnd += pages;
    } else {
      if (runEnd > runStart) ok = arena_.aliasPages(runStart, runStart, runEnd - runStart) && ok;
      runStart = page;
      runEnd = page + pages;
    }
    page += pages;
  }
  if (runEnd > runStart) ok = arena_.aliasPages(runStart, runStart, runEnd - runStart) && ok;
  return ok;
}

}  // namespace mesh
