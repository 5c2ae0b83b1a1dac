// Meshing: merging two spans of one size class onto one set of physical pages. Candidate search
// is in meshing/mesh_candidates.h, the write barrier in meshing/write_barrier.h and
// meshing/write_protect.h, the mapping budget in meshing/mapping_budget.h; this file holds the
// policy and the mesh operation itself.
//
// Spans live in private anonymous memory until they take part in a mesh (fork then copies them
// lazily); the memfd only holds mesh destinations, each at its own arena offset.
//
// A step (meshClass) takes the class lock to choose its pairs, and holds their spans
// (SpanLists::holdForMeshLocked: off the lists, owned by the mesher, so every free of their
// objects only sets a remote bit); it meshes them without the lock, whose holders would otherwise
// wait through system calls that can take milliseconds; and takes the lock again to give the
// spans back (finishMeshLocked). The mesh of src into dst (both held, live bitmaps disjoint):
//   1. barrier on (writers to a read-only span fault and wait in the handler until 7)
//   2. if dst is still anonymous, move it into the file: dst read-only, its pages written to its
//      file pages (one pwrite), the file pages mapped over dst (read-write again)
//   3. src's virtual pages read-only. When src already backs other virtual spans (an earlier
//      mesh), all of them: they all move onto dst
//   4. copy src's live objects to the same offsets in dst (dst's slots there are free)
//   5. map src's virtual pages onto dst's file pages (read-write again; src's anonymous pages
//      are dropped by the kernel)
//   6. barrier off
//   7. dst takes src's live bits, then the page map of src's pages points to dst
//   8. wait until no remote free is between its announcement and its end on src, move src's
//      remote frees to dst (see GlobalHeap::pin for the handshake)
//   9. if src was itself file-backed, punch its old file pages
// Any failure undoes the step that failed and skips the pair; a dst already moved into the file
// stays there (it is a valid file-backed span without extra spans).
//
// When a file-backed span is released, it and every span meshed into it are mapped anonymous
// again and its file pages are punched, so the arena's free lists only ever hold anonymous pages.
#include <algorithm>
#include <cstring>

#include "meshing/mesher.h"

#include "common/log.h"
#include "meshing/write_barrier.h"
#include "meshing/write_protect.h"
#include "miniheap/page_entry.h"

namespace mesh {

static constexpr uint64_t kFreePathStepNs = 1000000;
static constexpr size_t kMaxStepCandidates = 2048;  // spans one step considers, at most
// Classes of more objects per span use the split mesher. Two spans of 128 or 256 objects fit
// only when both are nearly empty, which random probes find as well, while the fullest-first
// search spends its bounded work on fuller spans that fit nothing (Redis's 16-byte class: 56
// meshes against 365; the fragmenter's mesh_compact took 1.5-1.7x the base time with the limit
// at 256 or 64 objects, 1.16x at 32, one 3-repetition run each). For 64 objects, on random spans
// meshed in steps, fullest first does better (56% occupancy against 37% at 8% live), but in the
// cpython workload the 64-byte class made
// 2,814 meshes against 9,904 and the process served at 148 MiB against 121 (the dynamics with
// the program's own churn were not worked out); 32 objects and fewer, where Redis's values are,
// gain the most.
static constexpr uint32_t kMaxFullestFirstSlots = 32;

void Mesher::init(uint32_t probes, uint32_t maxOccupancyPct, long maxMapCount, bool sameThread) {
  probes_ = probes;
  maxOccupancyPct_ = maxOccupancyPct;
  setMaxMapCount(maxMapCount);
  sameThreadMeshing_.store(sameThread, std::memory_order_relaxed);
}

// Step 2 of the mesh: moves the anonymous span mh into the memfd at its own offset, keeping its
// contents. mh must be write-protected (MeshGuard): its writers wait meanwhile. False (mh
// unchanged) on failure. The whole span is written with one copy through the file's view:
// copying only the live objects through a temporary shared window costs two more system calls
// and a page fault per page, and made compaction about 25% slower on the fragmenter.
bool Mesher::moveToFileLocked(MiniHeap* mh) {
  size_t page = mh->spanPage(), pages = mh->pages();
  if (!arena_.writeFilePages(page, page, pages) || !arena_.aliasPages(page, page, pages)) return false;
  mh->setFileBacked(true);
  fileSpans_.fetch_add(1, std::memory_order_relaxed);
  budget_.noteAdded(2);
  return true;
}

// The write protection of one mesh's spans, from before the first copy until the last remap.
// Through the userfaultfd when the mesh runs on the write-protection service's thread (every
// write waits, the kernel's too; meshing/write_protect.h), else with
// mprotect (the program's writes fault and wait in the barrier; a system call writing there
// fails with EFAULT). A range remapped meanwhile is writable on its new pages; end() makes the
// others writable again and wakes whatever waited.
class MeshGuard {
 public:
  MeshGuard(Arena& arena, size_t pages) : arena_(arena), pages_(pages) {}
  void add(size_t page) {
    range_[count_] = wp::Range{arena_.pageAddress(page), pages_ << os::kPageShift};
    page_[count_++] = page;
  }
  bool protect() {
    // wp::protect refuses off the service thread: mprotect and the SIGSEGV barrier then.
    uffd_ = wp::protect(range_, count_);
    if (uffd_) {
      startNs_ = os::monotonicNs();
      return true;
    }
    for (int i = 0; i < count_; ++i) {
      if (arena_.protectPages(page_[i], pages_, false)) continue;
      for (int u = 0; u < i; ++u) {
        if (!arena_.protectPages(page_[u], pages_, true)) fatal("could not undo a failed mesh");
      }
      return false;
    }
    return true;
  }
  // The range of page was mapped anew (read-write): it no longer needs to be made writable.
  void remapped(size_t page) {
    for (int i = 0; i < count_; ++i) remapped_[i] = remapped_[i] || page_[i] == page;
  }
  void end() {
    if (uffd_) {
      uint64_t waited = wp::finish(range_, remapped_, count_);
      if (waited > 0) barrier::noteKernelWaits(waited, os::monotonicNs() - startNs_);
      return;
    }
    for (int i = 0; i < count_; ++i) {
      if (!remapped_[i] && !arena_.protectPages(page_[i], pages_, true)) fatal("could not undo a failed mesh");
    }
  }

 private:
  Arena& arena_;
  size_t pages_;
  size_t page_[wp::kMaxRanges];
  wp::Range range_[wp::kMaxRanges];  // the same spans as addresses, for the service
  bool remapped_[wp::kMaxRanges] = {};
  int count_ = 0;
  bool uffd_ = false;
  uint64_t startNs_ = 0;
};

// Whether a virtual neighbour of mh's span is a file-backed span at its own offset: moving mh
// into the file then extends that mapping instead of splitting an anonymous one (two mappings
// fewer). A hint: the neighbour may belong to another class and change meanwhile.
bool Mesher::besideFileBacked(const MiniHeap* mh) const {
  auto ownFileBacked = [&](size_t page) {
    uintptr_t e = arena_.mapEntry(page);
    const MiniHeap* n = entryMiniHeap(e);
    return n != nullptr && !n->isLarge() && n->fileBacked() && page - entryPageInSpan(e) == n->spanPage();
  };
  size_t first = mh->spanPage(), end = first + mh->pages();
  return (first > 0 && ownFileBacked(first - 1)) || (end < arena_.pageCount() && ownFileBacked(end));
}

// The mesh of src into dst, both held for the mesh (selectPairsLocked): steps 1-9 of the header,
// without the class lock. Only the mesher changes their live bits, attaches or releases them
// meanwhile; frees of their objects set remote bits (also frees batched under the class lock,
// which is why finishMeshLocked takes src's remote bits under it). False when the mesh did not
// happen (both spans unchanged, except that dst may have moved into the file).
bool Mesher::meshPairUnlocked(MiniHeap* dst, MiniHeap* src) {
  // src may itself back several virtual spans (an earlier mesh): all of them move onto dst.
  uint32_t count = 1 + src->extraSpanCount();
  size_t srcPage = src->spanPage(), pages = src->pages();
  size_t spans[1 + kMaxExtraSpans];
  spans[0] = srcPage;
  for (uint32_t i = 1; i < count; ++i) spans[i] = src->extraSpan(i - 1);

  barrier::begin();
  bool moved = !dst->fileBacked();
  MeshGuard guard(arena_, pages);
  if (moved) guard.add(dst->spanPage());
  for (uint32_t k = 0; k < count; ++k) guard.add(spans[k]);
  if (!guard.protect()) {
    barrier::end();
    return false;
  }
  if (moved) {
    if (!moveToFileLocked(dst)) {
      guard.end();
      barrier::end();
      return false;
    }
    guard.remapped(dst->spanPage());
  }
  uint32_t size = src->objectSize();
  SpanBits b;
  src->copyLiveBits(b.w);
  for (int w = 0; w < 4; ++w) {
    for (uint64_t bits = b.w[w]; bits != 0; bits &= bits - 1) {
      uint32_t slot = static_cast<uint32_t>(w * 64 + __builtin_ctzll(bits));
      std::memcpy(dst->slotAddress(slot), src->slotAddress(slot), size);
    }
  }
  for (uint32_t k = 0; k < count; ++k) {
    if (arena_.aliasPages(spans[k], dst->spanPage(), pages)) {
      guard.remapped(spans[k]);
      continue;
    }
    // Nothing changed for src's objects. An anonymous src backs no other span, so k is 0 and
    // only the protection is undone; a src with other spans is file-backed, and its file pages
    // still hold its objects: point the spans moved so far back at them (src's own span onto
    // itself); the guard makes the others writable.
    bool undone = true;
    for (uint32_t u = 0; u < k; ++u) undone = undone && arena_.aliasPages(spans[u], srcPage, pages);
    if (!undone) fatal("could not undo a failed mesh");
    guard.end();
    barrier::end();
    return false;
  }
  guard.end();
  barrier::end();
  // The remaps left the program's page tables empty for these ranges: fill them here rather than
  // let the program's threads fault every page in again (about 10 us a fault on the development
  // machine; a server reading its meshed data paid it once per page). A hint: failure is harmless.
  for (uint32_t k = 0; k < count; ++k) arena_.prefaultPages(spans[k], pages);
  if (moved) arena_.prefaultPages(dst->spanPage(), pages);

  // dst takes src's live bits before any page-map entry points to it: a free that finds dst
  // there must find its object live.
  dst->absorbLive(*src);
  for (uint32_t k = 0; k < count; ++k) {
    for (size_t i = 0; i < pages; ++i) arena_.setMapEntrySeqCst(spans[k] + i, encodeEntry(dst, i));
  }
  while (src->pinned()) os::yieldThread();
  // The remap dropped src's anonymous pages; file pages of a file-backed src must be punched.
  if (src->fileBacked()) {
    arena_.releaseFilePages(srcPage, pages);
    src->setFileBacked(false);
    fileSpans_.fetch_sub(1, std::memory_order_relaxed);
  } else {
    arena_.noteReleased(pages);
  }
  budget_.noteAdded(2 * static_cast<long>(count));
  countMesh(pages);
  return true;
}

// After meshPairUnlocked: no free that looked src up before its page-map entries changed is still
// running (those under the class lock ended before we got it; the others were waited for through
// the pins), so src's remote bits are final. dst takes them and src's virtual spans; src is
// forgotten and dst given back to the lists.
void Mesher::finishMeshLocked(int cls, MiniHeap* dst, MiniHeap* src) {
  dst->absorbRemote(*src);
  dst->addExtraSpan(src->spanPage());
  for (uint32_t i = 0; i < src->extraSpanCount(); ++i) dst->addExtraSpan(src->extraSpan(i));
  lists_.dropMeshedLocked(cls, src);
  lists_.giveBackFromMeshLocked(cls, dst);
}

void Mesher::countMesh(size_t pages) {
  meshCount_.fetch_add(1, std::memory_order_relaxed);
  meshedBytesTotal_.fetch_add(pages << os::kPageShift, std::memory_order_relaxed);
  uint64_t now = meshedPages_.fetch_add(pages, std::memory_order_relaxed) + pages;
  uint64_t hwm = meshedPagesHwm_.load(std::memory_order_relaxed);
  while (now > hwm && !meshedPagesHwm_.compare_exchange_weak(hwm, now)) {
  }
}

void Mesher::holdClassAsStepForTest(int cls, uint64_t ns, std::atomic<bool>* holding) {
  lists_.lockForStep(cls);
  if (holding != nullptr) holding->store(true, std::memory_order_release);
  for (uint64_t start = os::monotonicNs(); os::monotonicNs() - start < ns;) os::yieldThread();
  lists_.unlockAfterStep(cls);
}

// A range whose mapping cannot be replaced is left out of the arena for good (a virtual leak,
// never a file page on the free lists).
void Mesher::releaseFileBackedLocked(MiniHeap* mh, Mutex& classLock) {
  size_t pages = mh->pages();
  for (uint32_t i = 0; i < mh->extraSpanCount(); ++i) {
    size_t page = mh->extraSpan(i);
    for (size_t k = 0; k < pages; ++k) arena_.setMapEntry(page + k, kTombstoneEntry);
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

size_t Mesher::meshClass(int cls, size_t maxPairs, uint64_t stepBudgetNs) {
  if (!canMesh() || sizeClass(cls).size >= kMaxMeshedObjectSize) return 0;
  LockGuard meshGuard(lock_);
  if (!barrier::install(arena_.base(), arena_.pageCount() << os::kPageShift)) {
    broken_ = true;
    return 0;
  }
  if (!budget_.allowsMesh()) return 0;
  // The class lock is held twice, briefly: to choose the pairs (and hold their spans), and to
  // give the spans back. The meshes themselves, whose system calls can take milliseconds each
  // (they interrupt every CPU that runs the program), run without it.
  lists_.lockForStep(cls);
  uint64_t start = os::monotonicNs();
  size_t held = selectPairsLocked(cls, maxPairs, stepBudgetNs);
  steps_.record(os::monotonicNs() - start);
  lists_.unlockAfterStep(cls);
  if (held == 0) return 0;
  size_t made = 0;
  for (size_t i = 0; i < held; ++i) {
    HeldPair& h = held_[i];
    // Bounded by time as well (a pair whose source backs several spans costs several remaps):
    // the pairs left over are given back unmeshed.
    h.meshed = (made == 0 || os::monotonicNs() - start <= stepBudgetNs) && meshPairUnlocked(h.dst, h.src);
    made += h.meshed;
    if (h.meshed && meshedHook_ != nullptr) meshedHook_(meshedHookArg_, cls, h.dst, h.src);
  }
  lists_.lockForStep(cls);
  uint64_t back = os::monotonicNs();
  for (size_t i = 0; i < held; ++i) {
    HeldPair& h = held_[i];
    if (h.meshed) {
      finishMeshLocked(cls, h.dst, h.src);
    } else {
      lists_.giveBackFromMeshLocked(cls, h.dst);
      lists_.giveBackFromMeshLocked(cls, h.src);
    }
  }
  steps_.record(os::monotonicNs() - back);
  lists_.unlockAfterStep(cls);
  return made;
}

size_t Mesher::selectPairsLocked(int cls, size_t maxPairs, uint64_t stepBudgetNs) {
  lists_.drainLocked(cls);
  // At most 2048 spans per step (for the shorter steps of the pacing, 64 per mesh the step may
  // make, 128 to 1024), taken from every occupancy bin (collectCandidatesLocked), keep the search
  // (and so the pause) bounded. A span's listedFree says whether it is at an occupancy meshing
  // accepts (counted when it was relisted: the drain above relisted every span whose bits
  // changed), without reading its bitmap's cache line.
  size_t maxCandidates = kMaxStepCandidates;
  if (stepBudgetNs < kStepBudgetNs) {
    maxCandidates = maxPairs == 0 || maxPairs >= 16 ? 1024 : maxPairs <= 2 ? 128 : 64 * maxPairs;
  }
  uint32_t n = static_cast<uint32_t>(collectCandidatesLocked(cls, maxCandidates));
  if (n < 2 || !bits_.resize(n) || !order_.resize(n) || !used_.resize(n) || !pairs_.resize(n / 2) ||
      !held_.resize(n / 2)) {
    return 0;
  }
  bool sameThread = sameThreadMeshing_.load(std::memory_order_relaxed);
  if (sameThread) {
    std::sort(candidates_.begin(), candidates_.end(), [](MiniHeap* x, MiniHeap* y) {
      return reinterpret_cast<uintptr_t>(x->lastOwner()) < reinterpret_cast<uintptr_t>(y->lastOwner());
    });
  }
  // Spans already in the memory file go first: a pair with one of them as destination costs two
  // remaps fewer (no move into the file), and each remap interrupts every CPU running the program.
  uint32_t cheap = 0;
  if (!sameThread) {
    for (uint32_t i = 0; i < n; ++i) {
      if (candidates_[i]->fileBacked()) std::swap(candidates_[i], candidates_[cheap++]);
    }
  }
  for (uint32_t i = 0; i < n; ++i) candidates_[i]->copyLiveBits(bits_[i].w);
  size_t limit = maxPairs == 0 ? n / 2 : maxPairs;
  // Search for up to four times `limit` pairs (the search stops there, which keeps a step short
  // when pairs are plentiful), then mesh at most `limit`: a pair that cannot be meshed (its
  // chains would be too long) must not use up the step.
  size_t want = limit < n / 8 ? 4 * limit : n / 2;
  size_t pairs = 0;
  uint32_t slots = sizeClass(cls).objects;
  if (sameThread) {
    pairs = findPairsPerOwnerLocked(n);
  } else if (slots > kMaxFullestFirstSlots) {
    pairs = findMeshPairs(bits_.begin(), n, rng_, probes_, order_.begin(), used_.begin(), pairs_.begin(),
                          want, cheap);
  } else {
    // The search's work is bounded to about half the step's budget (roughly a nanosecond each).
    static_assert(1 + kMaxExtraSpans <= kMaxSearchChain);
    if (!columns_.resize(fullestFirstScratchWords(n, slots)) || !chain_.resize(n)) return 0;
    for (uint32_t i = 0; i < n; ++i) chain_[i] = static_cast<uint8_t>(1 + candidates_[i]->extraSpanCount());
    pairs = findMeshPairsFullestFirst(bits_.begin(), chain_.begin(), n, slots, 1 + kMaxExtraSpans, order_.begin(),
                                      columns_.begin(), pairs_.begin(), want, stepBudgetNs / 2);
  }
  size_t held = 0;
  long mappings = 0;  // what the held pairs may add
  for (uint32_t i = 0; i < n; ++i) used_[i] = false;  // from here on: held in this step
  for (size_t i = 0; i < pairs && held < limit; ++i) {
    MiniHeap* a = candidates_[pairs_[i].a];
    MiniHeap* b = candidates_[pairs_[i].b];
    // Both then back 2 + a's extras + b's extras virtual spans, which must fit. The
    // destination is the one already in the memfd (no move needed); of two in the memfd, the
    // one with more extra spans (fewer to remap); of two anonymous ones, one beside a span in
    // the memfd (the kernel may merge the mappings); else the one with more objects.
    if (a->extraSpanCount() + 1 + b->extraSpanCount() > kMaxExtraSpans) continue;
    bool aIsDst;
    if (a->fileBacked() != b->fileBacked()) aIsDst = a->fileBacked();
    else if (a->extraSpanCount() != b->extraSpanCount()) aIsDst = a->extraSpanCount() > b->extraSpanCount();
    else if (!a->fileBacked() && besideFileBacked(a) != besideFileBacked(b)) aIsDst = besideFileBacked(a);
    else aIsDst = a->liveCount() >= b->liveCount();
    MiniHeap* dst = aIsDst ? a : b;
    MiniHeap* src = aIsDst ? b : a;
    long needed = MappingBudget::kMappingsPerMesh + 2 * static_cast<long>(src->extraSpanCount());
    if (!budget_.roomFor(mappings + needed)) break;  // counted again before the next step, not here
    // Held from here on: their live bits change only by our hand, so the disjointness checked
    // now (remote frees folded first) holds until the mesh.
    lists_.holdForMeshLocked(cls, dst);
    lists_.holdForMeshLocked(cls, src);
    dst->foldRemote();
    src->foldRemote();
    SpanBits x, y;
    dst->copyLiveBits(x.w);
    src->copyLiveBits(y.w);
    // (Given back either way: relisted, or released if their last objects were freed. Not
    // moved to the tail below, as a released span's miniheap may be reused at once.)
    used_[pairs_[i].a] = used_[pairs_[i].b] = true;
    if (!bitsDisjoint(x, y) || src->isEmpty()) {
      lists_.giveBackFromMeshLocked(cls, dst);
      lists_.giveBackFromMeshLocked(cls, src);
      continue;
    }
    held_[held++] = HeldPair{dst, src, false};
    mappings += needed;
  }
  // The candidates left over go to the end of their lists, so the next step looks at others
  // (else the same unmatched spans would fill every step's window and the class would look
  // exhausted while spans further down could mesh).
  for (uint32_t i = 0; i < n; ++i) {
    if (!used_[i]) lists_.moveToTailLocked(cls, candidates_[i]);
  }
  return held;
}

// Up to maxCandidates listed spans that could mesh. The search pairs full spans with empty ones,
// so the window takes from every occupancy bin: first up to a quarter of it from each bin
// (emptiest first), then the rest from where each list stopped. Spans at an occupancy meshing
// skips are passed over; at most four times maxCandidates spans are visited in all (as many as
// the lock may be held for), and in the first round at most four times a bin's quota in each bin
// (the fullest may be long and mostly such spans).
size_t Mesher::collectCandidatesLocked(int cls, size_t maxCandidates) {
  candidates_.clear();
  size_t visits = 4 * maxCandidates;
  MiniHeap* next[SpanLists::kBins][SpanLists::kLanes];
  for (int bin = 0; bin < SpanLists::kBins; ++bin) {
    for (int lane = 0; lane < SpanLists::kLanes; ++lane) next[bin][lane] = lists_.firstListedLocked(cls, lane, bin);
  }
  for (size_t quota : {maxCandidates / SpanLists::kBins, maxCandidates}) {
    for (int bin = 0; bin < SpanLists::kBins; ++bin) {
      size_t taken = 0, binVisits = 4 * quota;
      for (int lane = 0; lane < SpanLists::kLanes; ++lane) {
        MiniHeap*& mh = next[bin][lane];
        for (; mh != nullptr && taken < quota && candidates_.size() < maxCandidates && visits > 0 && binVisits > 0;
             mh = mh->next) {
          --visits;
          --binVisits;
          // (A span that already backs the most virtual spans a chain may have cannot take part
          // in another mesh, on either side.)
          if (mh->listedFree == 0 || mh->extraSpanCount() >= kMaxExtraSpans) continue;
          if (!candidates_.pushBack(mh)) return candidates_.size();
          ++taken;
        }
      }
    }
  }
  return candidates_.size();
}

// MESH_SAME_THREAD_MESHING: the candidates are sorted by last owner; each run of one owner is
// searched on its own, so a pair never joins spans of two threads (objects a thread allocated
// together stay together, which is kinder to its caches). Every run is searched in full: with a
// cap, the first runs would take all of it, and once their spans are meshed destinations (which
// cannot mesh with each other) a step would find nothing else. The caller stops at its limit.
size_t Mesher::findPairsPerOwnerLocked(uint32_t n) {
  size_t pairs = 0;
  for (uint32_t start = 0, end; start < n; start = end) {
    void* owner = candidates_[start]->lastOwner();
    for (end = start + 1; end < n && candidates_[end]->lastOwner() == owner; ++end) {
    }
    MeshPair* out = pairs_.begin() + pairs;
    size_t found = findMeshPairs(bits_.begin() + start, end - start, rng_, probes_,
                                 order_.begin() + start, used_.begin() + start, out, (end - start) / 2);
    for (size_t i = 0; i < found; ++i) {
      out[i].a += start;
      out[i].b += start;
    }
    pairs += found;
  }
  return pairs;
}

size_t Mesher::meshAll() {
  constexpr size_t kPairsPerStep = 16;  // bounds how long one class lock is held
  constexpr int kMaxPasses = 16;        // meshed spans can mesh again, a little fuller each time
  size_t total = 0;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    size_t made = 0;
    for (int cls = 0; cls < kNumClasses; ++cls) {
      // A step ends at kPairsPerStep meshes or at its time budget; a step that made any mesh
      // may leave more to do. A step sees at most kMaxStepCandidates spans and moves the ones it
      // could not pair to the end of the lists: a class with more spans gets as many fruitless
      // steps in a row as it takes to look at all of them (seen: a first compaction that met
      // only a window of older, unmatched spans and made nothing, while the next made 19).
      uint64_t fruitless = 0, allowed = 2 + lists_.spanCount(cls) / kMaxStepCandidates;
      for (;;) {
        size_t step = meshClass(cls, kPairsPerStep);
        made += step;
        if (step > 0) {
          fruitless = 0;
        } else if (++fruitless >= allowed) {
          break;
        }
      }
    }
    total += made;
    if (made == 0) break;
  }
  return total;
}

// --- pacing ----------------------------------------------------------------------------------
// Meshing work follows the memory it can win. The span lists keep each class's meshableFree, the
// free slots of its listed spans at an occupancy meshing accepts (maintained as spans are
// relisted, see GlobalHeap::noteListedFreeLocked), and the pacing keeps exhaustedAt, that
// count when a step last found no pair. Frees
// that make room in partly used spans raise meshableFree above exhaustedAt; once the growth is
// worth a step (kMinGainBytes, and a 32nd of what was there at the last futile step, at least
// kRetryNs after it, so a large class that cannot mesh is not retried for every small change)
// the class becomes active: it is meshed step by step, its whole meshable-free memory counting
// as its gain (new frees may let old free room mesh too), until a step finds nothing. Every
// mesh lowers meshableFree by one span's slots, so the work ends with what can be won.

uint64_t Mesher::classGainBytes(int cls, uint64_t nowNs) {
  uint32_t size = sizeClass(cls).size;
  if (size >= kMaxMeshedObjectSize) return 0;
  ClassPacing& c = pacing_[cls];
  uint64_t free = lists_.meshableFree(cls);
  if (c.active.load(std::memory_order_relaxed)) {
    if (free * size >= kMinGainBytes) return free * size;
    markExhausted(cls, free, nowNs);  // too little left to be worth the steps
    return 0;
  }
  uint64_t exhausted = c.exhaustedAt.load(std::memory_order_relaxed);
  if (exhausted > free) {
    // Allocations filled the spans since: what frees bring back from here on is new room.
    c.exhaustedAt.store(free, std::memory_order_relaxed);
    exhausted = free;
  }
  uint64_t gain = (free - exhausted) * size;
  if (gain < kMinGainBytes || gain < exhausted * size / 32) return 0;
  if (nowNs - c.exhaustedNs.load(std::memory_order_relaxed) < kRetryNs) return 0;
  c.active.store(true, std::memory_order_relaxed);
  return free * size;
}

void Mesher::markExhausted(int cls, uint64_t free, uint64_t nowNs) {
  ClassPacing& c = pacing_[cls];
  c.exhaustedAt.store(free, std::memory_order_relaxed);
  c.exhaustedNs.store(nowNs, std::memory_order_relaxed);
  c.active.store(false, std::memory_order_relaxed);
}

uint64_t Mesher::meshGainBytes() {
  uint64_t now = os::monotonicNs();
  uint64_t total = 0;
  for (int cls = 0; cls < kNumClasses; ++cls) total += classGainBytes(cls, now);
  return total;
}

uint64_t Mesher::meshableFreeBytes() const {
  uint64_t total = 0;
  for (int cls = 0; cls < kNumClasses; ++cls) total += lists_.meshableFree(cls) * sizeClass(cls).size;
  return total;
}

size_t Mesher::meshPaced(uint64_t budgetNs, bool yieldBetween) {
  if (!canMesh() || budgetNs == 0) return 0;
  constexpr size_t kPairsPerStep = 16;
  uint64_t start = os::monotonicNs();
  size_t total = 0;
  for (;;) {
    int cls = -1;
    uint64_t best = 0;
    uint64_t now = os::monotonicNs();
    for (int k = 0; k < kNumClasses; ++k) {
      uint64_t gain = classGainBytes(k, now);
      if (gain > best) {
        best = gain;
        cls = k;
      }
    }
    if (cls < 0) break;
    // A step looks at 64 candidates per mesh it may make; as many meshes as the last steps
    // made within the budget (where meshes are slow, a step makes few, and collecting 1024
    // candidates for one or two of them would cost more than the meshes).
    size_t pairs = pacedPairs_.load(std::memory_order_relaxed);
    uint64_t stepStart = os::monotonicNs();
    size_t made = meshClass(cls, pairs, kPacedStepBudgetNs);
    // A small look that found nothing is followed by a full one before the class counts as
    // exhausted.
    if (made == 0 && pairs < kPairsPerStep) made = meshClass(cls, kPairsPerStep, kPacedStepBudgetNs);
    uint64_t stepEnd = os::monotonicNs();
    if (made >= pairs) {
      pacedPairs_.store(pairs * 2 < kPairsPerStep ? pairs * 2 : kPairsPerStep, std::memory_order_relaxed);
    } else if (made > 0 && stepEnd - stepStart > kPacedStepBudgetNs) {
      pacedPairs_.store(made > 2 ? made : 2, std::memory_order_relaxed);
    }
    pacedMeshNs_.fetch_add(stepEnd - stepStart, std::memory_order_relaxed);
    if (made == 0) {
      markExhausted(cls, lists_.meshableFree(cls), stepEnd);
    } else {
      pacedMeshes_.fetch_add(made, std::memory_order_relaxed);
      pacedMeshedBytes_.fetch_add(made * sizeClass(cls).pages * os::kPageSize, std::memory_order_relaxed);
      total += made;
    }
    if (stepEnd - start >= budgetNs) break;
    if (yieldBetween) os::yieldThread();
  }
  return total;
}

size_t Mesher::maybeMesh(uint64_t periodNs) {
  if (periodNs == 0 || !canMesh()) return 0;
  uint64_t now = os::monotonicNs();
  uint64_t last = lastMeshNs_.load(std::memory_order_relaxed);
  uint64_t since = now - last;
  if (since < periodNs / 4) return 0;
  uint64_t gain = meshGainBytes();
  if (gain == 0 || (since < periodNs && gain < kEagerGainBytes)) return 0;
  if (!lastMeshNs_.compare_exchange_strong(last, now)) return 0;
  // About 1 ms of meshing per period (1% of one thread at the default 100 ms; 4% while much is
  // to be won), so the calling thread's pause stays short.
  return meshPaced(kFreePathStepNs, false);
}

MeshStats Mesher::stats() {
  MeshStats s{};
  s.meshCount = meshCount_.load(std::memory_order_relaxed);
  s.meshedBytesTotal = meshedBytesTotal_.load(std::memory_order_relaxed);
  s.meshedPages = meshedPages_.load(std::memory_order_relaxed);
  s.meshedPagesHwm = meshedPagesHwm_.load(std::memory_order_relaxed);
  s.meshPauseMaxNs = steps_.maxNs();
  s.meshPauseP99Ns = steps_.percentileNs(0.99);
  PauseHistogram::Snapshot waits;
  lockWaits_.addTo(&waits);
  barrier::waits().addTo(&waits);
  s.meshWaits = waits.total;
  s.meshWaitMaxNs = waits.max;
  s.meshWaitP99Ns = waits.percentileNs(0.99);
  {
    LockGuard guard(lock_);
    s.mappingEstimate = budget_.estimate();
    s.mappingLimit = budget_.limit();
  }
  s.fileBackedSpans = fileSpans_.load(std::memory_order_relaxed);
  s.pacedMeshes = pacedMeshes_.load(std::memory_order_relaxed);
  s.pacedMeshedBytes = pacedMeshedBytes_.load(std::memory_order_relaxed);
  s.pacedMeshNs = pacedMeshNs_.load(std::memory_order_relaxed);
  s.meshableFreeBytes = meshableFreeBytes();
  return s;
}

void Mesher::resetInChild() {
  budget_.resetAfterForkInChild();  // it was reading the parent's mappings
  lock_.resetAfterFork();
}

}  // namespace mesh
