#include "global/global_heap.h"

#include <new>

#include "common/log.h"

namespace mesh {

bool GlobalHeap::init(const HeapConfig& config) {
  largeReleaseBytes_ = config.arena.maxDirtyBytes / 4;
  mesher_.init(config.meshProbes, config.meshMaxOccupancyPct, config.maxMapCount,
               config.sameThreadMeshing);
  sparsePct_.store(config.sparsePct, std::memory_order_relaxed);
  sparseMinFreeBytes_ = config.sparseMinFreeBytes;
  freedKey_ = config.freedKey;
  return arena_.init(config.arena);
}

// --- miniheap objects ------------------------------------------------------------------------

MiniHeap* GlobalHeap::newMiniHeap(bool nonBlocking) {
  void* mem;
  if (nonBlocking) {
    if (!metaLock_.tryLockBounded()) return nullptr;
    mem = miniheaps_.allocate();
    metaLock_.unlock();
  } else {
    LockGuard guard(metaLock_);
    mem = miniheaps_.allocate();
  }
  if (mem == nullptr) return nullptr;
  uint64_t live = mhAllocs_.fetch_add(1, std::memory_order_relaxed) + 1 -
                  mhFrees_.load(std::memory_order_relaxed);
  uint64_t hwm = mhHighWater_.load(std::memory_order_relaxed);
  while (live > hwm && !mhHighWater_.compare_exchange_weak(hwm, live)) {
  }
  return static_cast<MiniHeap*>(mem);
}

void GlobalHeap::recycleMiniHeap(MiniHeap* mh) {
  mh->~MiniHeap();
  mhFrees_.fetch_add(1, std::memory_order_relaxed);
  LockGuard guard(metaLock_);
  miniheaps_.release(mh);
}

void GlobalHeap::setEntries(size_t page, size_t pages, MiniHeap* mh) {
  for (size_t i = 0; i < pages; ++i) {
    arena_.setMapEntry(page + i, mh != nullptr ? encodeEntry(mh, i) : kTombstoneEntry);
  }
}

// --- spans -----------------------------------------------------------------------------------

MiniHeap* GlobalHeap::newSpanLocked(int cls, bool nonBlocking) {
  const SizeClass& sc = sizeClass(cls);
  bool zeroed;
  size_t page = nonBlocking ? arena_.tryAllocPages(sc.pages, &zeroed) : arena_.allocPages(sc.pages, 1, &zeroed);
  if (page == kNoPage) return nullptr;
  MiniHeap* mh = newMiniHeap(nonBlocking);
  if (mh == nullptr) {
    if (!nonBlocking) arena_.freePages(page, sc.pages, false);  // else: leaked, never blocks
    return nullptr;
  }
  new (mh) MiniHeap(cls, page, arena_.pageAddress(page));
  setEntries(page, sc.pages, mh);
  ++classes_[cls].spans;
  return mh;
}

void GlobalHeap::unlinkLocked(ClassState& c, MiniHeap* mh) {
  if (mh->bin == kNoBin) return;
  noteListedFreeLocked(c, mh, mh->objectCount());  // no longer counted
  if (mh->prev != nullptr) mh->prev->next = mh->next;
  else c.partial[mh->lane][mh->bin] = mh->next;
  if (mh->next != nullptr) mh->next->prev = mh->prev;
  else c.partialTail[mh->lane][mh->bin] = mh->prev;
  mh->prev = mh->next = nullptr;
  mh->bin = kNoBin;
}

void GlobalHeap::moveToTailLocked(int cls, MiniHeap* mh) {
  ClassState& c = classes_[cls];
  uint8_t bin = mh->bin;
  if (bin == kNoBin || mh->next == nullptr) return;
  MiniHeap** head = c.partial[mh->lane];
  MiniHeap** tails = c.partialTail[mh->lane];
  mh->next->prev = mh->prev;
  if (mh->prev != nullptr) mh->prev->next = mh->next;
  else head[bin] = mh->next;
  MiniHeap* tail = tails[bin];
  mh->prev = tail;
  mh->next = nullptr;
  tail->next = mh;
  tails[bin] = mh;
}

void GlobalHeap::releaseSpanLocked(MiniHeap* mh) {
  ClassState& c = classes_[mh->sizeClassIndex()];
  unlinkLocked(c, mh);
  --c.spans;
  setEntries(mh->spanPage(), mh->pages(), nullptr);
  if (mh->fileBacked()) {
    // Back to anonymous memory, with the spans meshed into it.
    mesher_.releaseFileBackedLocked(mh, classes_[mh->sizeClassIndex()].lock);
  } else {
    arena_.freePages(mh->spanPage(), mh->pages(), false);
  }
  // A remote freer may still be between its fetch_or and its last look at this miniheap (it
  // had a live object here a moment ago); wait for it before the object is reused.
  while (mh->pinned()) os::yieldThread();
  forget(mh);
}

void GlobalHeap::dropMeshedLocked(int cls, MiniHeap* src) {
  ClassState& c = classes_[cls];
  unlinkLocked(c, src);
  --c.spans;
  ++c.meshes;
  forget(src);
}

void GlobalHeap::holdForMeshLocked(int cls, MiniHeap* mh) {
  unlinkLocked(classes_[cls], mh);
  mh->holdForMesh();
}

void GlobalHeap::giveBackFromMeshLocked(int cls, MiniHeap* mh) {
  (void)cls;
  // As detach: store the owner, then fold (pairs with freeNonOwner's fetch_or-then-load).
  mh->setOwner(nullptr);
  mh->foldRemote();
  relistLocked(mh);
}

void GlobalHeap::forget(MiniHeap* mh) {
  mh->alive = false;
  // A span still linked in the class queue is recycled by the drain that pops it.
  if (mh->markQueued()) recycleMiniHeap(mh);
}

// A listed span's free slots count towards its class's meshable-free total while meshing would
// consider the span (Mesher::considers, the occupancy test of a mesh step). Counting here, where
// every change of a detached span's live count ends (relistLocked), keeps the total exact without
// a scan; a span whose bits change without a relist (a failed mesh folds remote frees) is set
// right at its next relist.
void GlobalHeap::noteListedFreeLocked(ClassState& c, MiniHeap* mh, uint32_t live) {
  uint16_t free = static_cast<uint16_t>(mesher_.considers(mh, live) ? mh->objectCount() - live : 0);
  if (free == mh->listedFree) return;
  c.meshableFree.store(c.meshableFree.load(std::memory_order_relaxed) + free - mh->listedFree,
                       std::memory_order_relaxed);
  mh->listedFree = free;
}

void GlobalHeap::relistLocked(MiniHeap* mh) {
  ClassState& c = classes_[mh->sizeClassIndex()];
  uint32_t live = mh->liveCount();
  if (live == 0) {
    releaseSpanLocked(mh);
    return;
  }
  // A sparse span is left to empty (MiniHeap::sparse): its objects stop coming back to malloc
  // through the freed stacks, so the fuller spans take the new objects. Only in a class with
  // much free memory in its partial spans: a program with a few objects of a size has sparse
  // spans that are not worth a slower free.
  mh->setSparse(live * 100 < sparsePct_.load(std::memory_order_relaxed) * mh->objectCount() &&
                  c.meshableFree.load(std::memory_order_relaxed) * mh->objectSize() >= sparseMinFreeBytes_);
  uint8_t bin = live == mh->objectCount() ? kNoBin
                                          : static_cast<uint8_t>(live * kBins / mh->objectCount());
  if (bin != kNoBin) noteListedFreeLocked(c, mh, live);
  if (bin == mh->bin) return;
  unlinkLocked(c, mh);
  if (bin == kNoBin) return;
  noteListedFreeLocked(c, mh, live);  // (unlinking cleared it)
  mh->bin = bin;
  mh->prev = nullptr;
  mh->next = c.partial[mh->lane][bin];
  if (mh->next != nullptr) mh->next->prev = mh;
  else c.partialTail[mh->lane][bin] = mh;
  c.partial[mh->lane][bin] = mh;
}

void GlobalHeap::drainLocked(int cls) {
  ClassState& c = classes_[cls];
  MiniHeap* mh = c.queue.exchange(nullptr, std::memory_order_acq_rel);
  c.queued.store(0, std::memory_order_relaxed);
  while (mh != nullptr) {
    MiniHeap* next = mh->nextQueued;
    if (!mh->alive) {
      recycleMiniHeap(mh);
    } else {
      mh->clearQueued();
      // Attached spans are folded by their owner; only detached ones are ours to update.
      if (mh->owner() == nullptr) {
        mh->foldRemote();
        relistLocked(mh);
      }
    }
    mh = next;
  }
}

void GlobalHeap::lockContended(ClassState& c) {
  if (!c.stepHolds.load(std::memory_order_relaxed)) {
    c.lock.lock();
    return;
  }
  uint64_t start = os::monotonicNs();
  c.appWaiters.fetch_add(1, std::memory_order_relaxed);
  c.lock.lock();
  c.appWaiters.fetch_sub(1, std::memory_order_relaxed);
  mesher_.noteStepWait(os::monotonicNs() - start);
}

void GlobalHeap::lockForStep(int cls) {
  // An application thread that waited for the last step goes first: the lock is not fair, and a
  // step taken again at once would make it wait through several (30 ms seen on kvstore).
  for (int i = 0; i < 256 && classes_[cls].appWaiters.load(std::memory_order_relaxed) != 0; ++i) {
    os::yieldThread();
  }
  classes_[cls].lock.lock();
  classes_[cls].stepHolds.store(true, std::memory_order_relaxed);
}

void GlobalHeap::unlockAfterStep(int cls) {
  // Frees batched meanwhile went to their spans as remote frees (freeBatchBesideStep): those
  // that saw the flag still set are folded here, the others by their freeing thread (a store,
  // a fence, then a look at the queue here; a push, a fence, then a look at the flag there: one
  // of the two sees the other).
  classes_[cls].stepHolds.store(false, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  drainLocked(cls);
  classes_[cls].lock.unlock();
}

uint64_t GlobalHeap::spanCount(int cls) {
  LockGuard guard(classes_[cls].lock);
  return classes_[cls].spans;
}

MiniHeap* GlobalHeap::fullestListedLocked(ClassState& c, int lane) {
  for (int bin = kBins - 1; bin >= 0; --bin) {
    if (c.partial[lane][bin] != nullptr) return c.partial[lane][bin];
  }
  return nullptr;
}

MiniHeap* GlobalHeap::fullestListedAnyLaneLocked(ClassState& c) {
  for (int bin = kBins - 1; bin >= 0; --bin) {
    for (int lane = 0; lane < kLanes; ++lane) {
      if (c.partial[lane][bin] != nullptr) return c.partial[lane][bin];
    }
  }
  return nullptr;
}

// Objects of another thread's span would share cache lines with the ones this thread puts
// there, and two threads writing one line take turns owning it (alloc-test-like's two threads
// took up to 1.4x jemalloc's time, 1.1x with lanes). So a thread takes the fullest span of its
// own lane, and only if there is none the fullest of any lane: a partial span is still always
// reused before a new one is made, so lanes strand no memory. (Keeping lanes apart until others
// strand 1 MiB of a class cost larson 40% more peak memory, test-stress and churn 5%.)
MiniHeap* GlobalHeap::chooseListedLocked(int cls, int lane) {
  ClassState& c = classes_[cls];
  if (MiniHeap* mh = fullestListedLocked(c, lane)) return mh;
  return fullestListedAnyLaneLocked(c);
}

int GlobalHeap::joinLane() {
  int best = 0;
  for (int l = 1; l < kLanes; ++l) {
    if (laneThreads_[l].load(std::memory_order_relaxed) < laneThreads_[best].load(std::memory_order_relaxed)) best = l;
  }
  laneThreads_[best].fetch_add(1, std::memory_order_relaxed);
  return best;
}

void GlobalHeap::leaveLane(int lane) { laneThreads_[lane].fetch_sub(1, std::memory_order_relaxed); }

MiniHeap* GlobalHeap::attach(int cls, void* owner, int lane) {
  refills_.fetch_add(1, std::memory_order_relaxed);
  ClassState& c = classes_[cls];
  ClassLock guard(*this, c);
  drainLocked(cls);
  MiniHeap* mh = chooseListedLocked(cls, lane);
  if (mh != nullptr) {
    unlinkLocked(c, mh);
    mh->foldRemote();
  } else {
    mh = newSpanLocked(cls);
    if (mh == nullptr) return nullptr;
  }
  mh->lane = static_cast<uint8_t>(lane);
  mh->setSparse(false);  // it takes new objects now
  mh->setOwner(owner);
  return mh;
}

void GlobalHeap::detach(MiniHeap* mh) {
  ClassState& c = classes_[mh->sizeClassIndex()];
  ClassLock guard(*this, c);
  // Store owner, then fold: pairs with freeNonOwner's fetch_or-then-load (see miniheap.h).
  mh->setOwner(nullptr);
  mh->foldRemote();
  relistLocked(mh);
}

MiniHeap* GlobalHeap::pin(const void* ptr, uintptr_t* entry) {
  size_t page = arena_.pageOf(ptr);
  // Announce, then check that the page still belongs to the miniheap: a mesher that moves the
  // page to another miniheap stores the new entry and then waits for announcements to end, so
  // either it sees ours (and waits) or we see its new entry (and retry there). Slot numbers and
  // offsets are the same in both miniheaps.
  for (;;) {
    MiniHeap* mh = entryMiniHeap(*entry);
    if (mh == nullptr) return nullptr;
    mh->pin();
    uintptr_t now = arena_.mapEntrySeqCst(page);
    if (now == *entry) return mh;
    mh->unpin();
    *entry = now;
  }
}

void GlobalHeap::freeNonOwner(const void* ptr, uintptr_t entry, uint32_t slot) {
  MiniHeap* mh = pin(ptr, &entry);
  if (mh == nullptr) fatalPointer("double free of", ptr);
  freeNonOwnerPinned(mh, slot, ptr);
}

void GlobalHeap::freeNonOwnerPinned(MiniHeap* mh, uint32_t slot, const void* ptr) {
  int cls = mh->sizeClassIndex();
  ClassState& c = classes_[cls];
  // Keyed before the bit is set: once the owner can see the free, a second free sees the key.
  // (A double free overwrites the key of an object already freed: harmless, freeRemote aborts.)
  setFreedKey(ptr);
  mh->freeRemote(slot, ptr);
  bool queue = mh->ownerSeqCst() == nullptr && mh->markQueued();
  if (queue) {
    MiniHeap* head = c.queue.load(std::memory_order_relaxed);
    do {
      mh->nextQueued = head;
    } while (!c.queue.compare_exchange_weak(head, mh, std::memory_order_release,
                                            std::memory_order_relaxed));
  }
  unpin(mh);
  if (queue && c.queued.fetch_add(1, std::memory_order_relaxed) + 1 >= kDrainThreshold &&
      c.lock.tryLock()) {
    drainLocked(cls);
    c.lock.unlock();
  }
}

uint32_t GlobalHeap::freeBatch(int cls, void** ptrs, uint32_t n) {
  ClassState& c = classes_[cls];
  // A mesh step holds the lock (briefly, but its thread can be descheduled meanwhile): rather
  // than wait for it, free each object as another thread's free does (a remote bit, under a pin),
  // which needs no lock. The spans' bits are folded by the next drain or owner.
  if (MESH_UNLIKELY(c.stepHolds.load(std::memory_order_relaxed))) return freeBatchBesideStep(cls, ptrs, n);
  uint32_t rejected = 0;
  ClassLock guard(*this, c);
  // Under the class lock nothing of this class moves: no mesh, attach, detach or release runs,
  // so page-map entries and owners are stable and no pin is needed. Each span touched is
  // relisted once, after its last object (relisting counts its live bits): a batch usually
  // holds a few objects each of a few spans.
  MiniHeap* touched[16];
  uint32_t nTouched = 0;
  auto relistTouched = [&] {
    for (uint32_t k = 0; k < nTouched; ++k) relistLocked(touched[k]);
    nTouched = 0;
  };
  for (uint32_t i = 0; i < n; ++i) {
    void* p = ptrs[i];
    uintptr_t entry;
    uint32_t slot;
    MiniHeap* mh = slotOfClass(cls, p, &entry, &slot);
    if (mh == nullptr) {
      ptrs[rejected++] = p;
      continue;
    }
    if (mh->owner() != nullptr) {
      // Attached to a thread heap (maybe the caller's): its owner folds the remote bit.
      mh->freeRemote(slot, p);
      continue;
    }
    if (!mh->isLive(slot)) fatalPointer("double free of", p);
    mh->clearLive(slot);
    uint32_t k = 0;
    while (k < nTouched && touched[k] != mh) ++k;
    if (k == nTouched) {
      if (nTouched == 16) relistTouched();
      touched[nTouched++] = mh;
    }
  }
  relistTouched();
  return rejected;
}

MiniHeap* GlobalHeap::slotOfClass(int cls, const void* p, uintptr_t* entry, uint32_t* slot) const {
  *entry = entryFor(p);
  MiniHeap* mh = entryMiniHeap(*entry);
  if (mh == nullptr || mh->sizeClassIndex() != cls ||
      !mh->slotForOffset(static_cast<size_t>(static_cast<const char*>(p) - spanStartFor(p, *entry)), slot)) {
    return nullptr;
  }
  return mh;
}

uint32_t GlobalHeap::freeBatchBesideStep(int cls, void** ptrs, uint32_t n) {
  uint32_t rejected = 0;
  for (uint32_t i = 0; i < n; ++i) {
    void* p = ptrs[i];
    uintptr_t entry;
    uint32_t slot;
    // The object is live in its span (it was on a freed stack), so the span is neither released
    // nor recycled meanwhile; a mesh may move it, which keeps class and slot (the pin retries).
    if (slotOfClass(cls, p, &entry, &slot) == nullptr) {
      ptrs[rejected++] = p;
      continue;
    }
    freeNonOwner(p, entry, slot);
  }
  besideStepFrees_.fetch_add(n - rejected, std::memory_order_relaxed);
  // Folded as a batch under the lock would have been: by the step when it lets go if it still
  // holds the lock now (unlockAfterStep), else here.
  ClassState& c = classes_[cls];
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!c.stepHolds.load(std::memory_order_relaxed)) {
    ClassLock guard(*this, c);
    drainLocked(cls);
  }
  return rejected;
}

bool GlobalHeap::isLiveSmall(const void* ptr, uintptr_t entry, uint32_t slot) {
  MiniHeap* mh = pin(ptr, &entry);
  if (mh == nullptr) return false;
  bool live = mh->isLive(slot);
  unpin(mh);
  return live;
}

void* GlobalHeap::takeSlotLocked(MiniHeap* mh) {
  for (int w = 0; w < 4; ++w) {
    uint64_t freeBits = ~mh->liveWord(w);
    if (freeBits == 0) continue;
    uint32_t slot = static_cast<uint32_t>(w * 64 + __builtin_ctzll(freeBits));
    if (slot >= mh->objectCount()) break;
    mh->setLive(slot);
    relistLocked(mh);  // never releases: the span is not empty
    void* p = mh->slotAddress(slot);
    clearFreedKey(p);
    return p;
  }
  fatal("internal error: partial span without a free slot");
}

void* GlobalHeap::allocUnattached(int cls) {
  ClassState& c = classes_[cls];
  ClassLock guard(*this, c);
  drainLocked(cls);
  MiniHeap* mh = fullestListedAnyLaneLocked(c);
  if (mh == nullptr) {
    mh = newSpanLocked(cls);
    if (mh == nullptr) return nullptr;
  }
  return takeSlotLocked(mh);
}

void* GlobalHeap::allocUnattachedNested(int cls) {
  ClassState& c = classes_[cls];
  if (!c.lock.tryLockBounded()) return nullptr;
  void* p = nullptr;
  if (MiniHeap* mh = fullestListedAnyLaneLocked(c)) p = takeSlotLocked(mh);
  if (p == nullptr) {
    MiniHeap* mh = newSpanLocked(cls, true);
    if (mh != nullptr) p = takeSlotLocked(mh);
  }
  c.lock.unlock();
  return p;
}

// --- large objects ---------------------------------------------------------------------------

void* GlobalHeap::allocLarge(size_t bytes, size_t alignPages, bool* zeroed) {
  size_t pages = (bytes + os::kPageSize - 1) >> os::kPageShift;
  if (bytes > (size_t{1} << 62) || pages == 0) return nullptr;
  size_t page = arena_.allocPages(pages, alignPages, zeroed);
  if (page == kNoPage) return nullptr;
  MiniHeap* mh = newMiniHeap();
  if (mh == nullptr) {
    arena_.freePages(page, pages, false);
    return nullptr;
  }
  new (mh) MiniHeap(page, pages, arena_.pageAddress(page), *zeroed);
  arena_.setMapEntry(page, encodeEntry(mh, 0));
  largeAllocs_.fetch_add(1, std::memory_order_relaxed);
  largeBytes_.fetch_add(pages << os::kPageShift, std::memory_order_relaxed);
  return mh->spanStart();
}

void GlobalHeap::freeLarge(MiniHeap* mh, const void* ptr) {
  if (ptr != mh->spanStart()) fatalPointer("invalid free of", ptr);
  mh->markLargeFreed(ptr);  // detects a racing double free
  releaseLarge(mh);
}

void GlobalHeap::releaseLarge(MiniHeap* mh) {
  size_t page = mh->spanPage(), pages = mh->pages();
  arena_.setMapEntry(page, kTombstoneEntry);
  largeBytes_.fetch_sub(pages << os::kPageShift, std::memory_order_relaxed);
  arena_.freePages(page, pages, (pages << os::kPageShift) >= largeReleaseBytes_);
  recycleMiniHeap(mh);
}

void GlobalHeap::shrinkLarge(MiniHeap* mh, size_t newPages) {
  size_t pages = mh->pages();
  if (newPages >= pages) return;
  size_t tail = mh->spanPage() + newPages;
  new (mh) MiniHeap(mh->spanPage(), newPages, mh->spanStart(), false);
  largeBytes_.fetch_sub((pages - newPages) << os::kPageShift, std::memory_order_relaxed);
  arena_.freePages(tail, pages - newPages, true);
}

// --- maintenance -----------------------------------------------------------------------------

void GlobalHeap::drainAll() {
  for (int cls = 0; cls < kNumClasses; ++cls) {
    // An empty queue needs no lock (a span queued after this look is drained next time).
    if (classes_[cls].queue.load(std::memory_order_acquire) == nullptr) continue;
    LockGuard guard(classes_[cls].lock);
    drainLocked(cls);
  }
}

size_t GlobalHeap::releaseFreeMemory() {
  drainAll();
  return arena_.releaseDirty();
}

size_t GlobalHeap::maybeDecay(uint64_t decayNs, uint64_t budgetNs) {
  if (decayNs == 0) return 0;
  uint64_t now = os::monotonicNs();
  uint64_t last = lastDecayNs_.load(std::memory_order_relaxed);
  // A pass every half decay period: a page freed just after a pass is marked by the next one
  // and returned by the one after, so it goes back between decayNs / 2 and decayNs unused.
  bool pass = now - last >= decayNs / 2;
  if (!pass && !decayUnfinished_.load(std::memory_order_relaxed)) return 0;
  if (!lastDecayNs_.compare_exchange_strong(last, pass ? now : last)) return 0;
  size_t bytes = 0;
  bool more = false;
  do {
    bytes += arena_.releaseAgedDirty(kDecayStepNs, pass, &more);
    pass = false;  // the rest of the call continues the same pass
  } while (more && os::monotonicNs() - now < budgetNs);
  decayUnfinished_.store(more, std::memory_order_relaxed);
  decayedBytes_.fetch_add(bytes, std::memory_order_relaxed);
  return bytes;
}

HeapStats GlobalHeap::stats() {
  HeapStats s{};
  static_cast<MeshStats&>(s) = mesher_.stats();
  s.mhAllocCount = mhAllocs_.load(std::memory_order_relaxed);
  s.mhFreeCount = mhFrees_.load(std::memory_order_relaxed);
  s.mhLive = s.mhAllocCount - s.mhFreeCount;
  s.mhHighWater = mhHighWater_.load(std::memory_order_relaxed);
  s.largeAllocs = largeAllocs_.load(std::memory_order_relaxed);
  s.largeBytes = largeBytes_.load(std::memory_order_relaxed);
  s.decayedBytes = decayedBytes_.load(std::memory_order_relaxed);
  s.arena = arena_.stats();
  return s;
}

ClassStats GlobalHeap::classStats(int cls) {
  ClassState& c = classes_[cls];
  LockGuard guard(c.lock);
  ClassStats s{};
  s.spans = c.spans;
  s.meshes = c.meshes;
  s.meshableFree = c.meshableFree.load(std::memory_order_relaxed);
  for (auto& lane : c.partial) {
    for (MiniHeap* list : lane) {
      for (MiniHeap* mh = list; mh != nullptr; mh = mh->next) {
        ++s.partialSpans;
        s.liveObjects += mh->liveCount();
        s.capacity += mh->objectCount();
      }
    }
  }
  return s;
}

}  // namespace mesh
