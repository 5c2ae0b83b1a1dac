#include "arena/arena.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace mesh {

namespace {
constexpr size_t kCommitStepPages = 1024;              // 4 MiB
constexpr size_t kMaxGrowBytes = size_t{64} << 30;     // at most this much more per growth
// Where the first reservation goes: above the low addresses programs use with MAP_FIXED, below
// the executable and libraries, with room to grow; randomised within 4 TiB so that the heap's
// address stays unpredictable. The kernel places it elsewhere when that range is taken.
void* reservationHint() {
  uint64_t r = os::monotonicNs() ^ (reinterpret_cast<uintptr_t>(&r) >> 4);
  r = (r * 0x9E3779B97F4A7C15ull) >> 52;  // 12 bits: 4096 slots of 1 GiB
  return reinterpret_cast<void*>((uintptr_t{16} << 40) + (r << 30));
}
size_t pageUp(size_t bytes) { return (bytes + os::kPageSize - 1) & ~(os::kPageSize - 1); }
size_t pageDown(size_t bytes) { return bytes & ~(os::kPageSize - 1); }
}  // namespace

Arena::~Arena() {
  if (base_ != nullptr) os::unmap(base_, reservedBytes());
  if (pageMap_ != nullptr) os::unmap(pageMap_, pageUp(maxPages_ * sizeof(uintptr_t)));
  if (view_ != nullptr) os::unmap(view_, viewBytes_);
  if (childView_ != nullptr) os::unmap(childView_, childViewBytes_);
}

bool Arena::reserve(size_t bytes, size_t maxBytes) {
  void* range = os::reserveAddressSpace(reservationHint(), bytes, false, false);
  if (range == nullptr) return false;
  // The page map covers the whole growth limit if it can (readable reservations cost no
  // charge, only address space); under an address-space limit it shrinks, never below the range.
  size_t minPages = bytes >> os::kPageShift, mapPages = std::max(maxBytes >> os::kPageShift, minPages);
  void* map = nullptr;
  for (;; mapPages = std::max(mapPages / 2, minPages)) {
    map = os::reserveAddressSpace(nullptr, pageUp(mapPages * sizeof(uintptr_t)), true, false);
    if (map != nullptr || mapPages == minPages) break;
  }
  if (map == nullptr) {
    os::unmap(range, bytes);
    return false;
  }
  os::noHugePages(range, bytes);
  base_ = static_cast<char*>(range);
  reservedBytes_.store(bytes, std::memory_order_relaxed);
  pageCount_.store(bytes >> os::kPageShift, std::memory_order_relaxed);
  maxPages_ = mapPages;
  mappedBoundBytes_ = mapPages << os::kPageShift;
  pageMap_ = static_cast<std::atomic<uintptr_t>*>(map);
  return true;
}

char* Arena::makeFileView(size_t bytes) const {
  auto* view = static_cast<char*>(os::createSharedFile(bytes));
  // Mappings duplicated from the view take its flags: the same as the range's, so that the
  // kernel can merge neighbouring ones.
  if (view != nullptr) os::noHugePages(view, bytes);
  return view;
}

bool Arena::init(const ArenaConfig& config) {
  maxDirtyPages_ = config.maxDirtyBytes >> os::kPageShift;
  strict_ = os::strictOvercommit();
  // Under strict overcommit every kept free page is charged to the process (and counts against
  // the machine's commit limit, a fork's too): keep at most kStrictMaxDirtyBytes.
  if (strict_) maxDirtyPages_ = std::min(maxDirtyPages_, kStrictMaxDirtyBytes >> os::kPageShift);
  size_t limit = os::addressSpaceLimit();
  size_t maxBytes = std::max(config.maxBytes, config.reserveBytes);
  // Under an address-space limit the heap cannot outgrow it: neither can the page map.
  if (limit != SIZE_MAX) maxBytes = std::min(maxBytes, std::max(pageUp(limit), config.minReserveBytes));
  bool reserved = false;
  for (size_t bytes = std::min(config.reserveBytes, maxBytes); !reserved && bytes >= config.minReserveBytes;
       bytes /= 2) {
    reserved = reserve(bytes, maxBytes);
  }
  if (!reserved) return false;
  // The file only receives meshed spans: a span's file offset is its arena offset, so the file
  // is as large as the arena may grow (sparse: the size costs nothing). Under an address-space
  // limit the view is kept to a sixteenth of it (the heap needs the rest); spans beyond the
  // view do not mesh. Without a file, no meshing.
  if (config.useMemfd) {
    size_t want = maxPages_ << os::kPageShift;
    if (limit != SIZE_MAX) want = std::min(want, pageDown(limit / 16));
    for (size_t bytes = want; view_ == nullptr && bytes >= config.minReserveBytes; bytes /= 2) {
      view_ = makeFileView(bytes);
      if (view_ != nullptr) viewBytes_ = bytes;
    }
  }
  return true;
}

size_t Arena::committedBytes() {
  LockGuard guard(lock_);
  return committed_ << os::kPageShift;
}

// Makes [committed_, endPage) read-write, in steps of 4 MiB, and the page map entries of those
// pages writable. False (nothing changed) when the kernel refuses the charge.
bool Arena::commitLocked(size_t endPage) {
  if (endPage <= committed_) return true;
  size_t end = std::min((endPage + kCommitStepPages - 1) / kCommitStepPages * kCommitStepPages, pageCount());
  if (!os::commit(pageAddress(committed_), (end - committed_) << os::kPageShift)) return false;
  auto* mapBytes = reinterpret_cast<char*>(pageMap_);
  size_t from = pageDown(committed_ * sizeof(uintptr_t)), to = pageUp(end * sizeof(uintptr_t));
  if (to > from && !os::commit(mapBytes + from, to - from)) {
    os::decommit(pageAddress(committed_), (end - committed_) << os::kPageShift);
    return false;
  }
  committed_ = end;
  return true;
}

// Extends the range in place by at least `pages` pages (more when it can, so growth is rare).
bool Arena::growLocked(size_t pages) {
  size_t count = pageCount();
  if (pages > maxPages_ - count) return false;
  size_t want = std::min(std::max(pages, std::min(count, kMaxGrowBytes >> os::kPageShift)), maxPages_ - count);
  for (;;) {
    if (os::reserveAddressSpace(pageAddress(count), want << os::kPageShift, false, true) != nullptr) {
      os::noHugePages(pageAddress(count), want << os::kPageShift);
      pageCount_.store(count + want, std::memory_order_release);
      reservedBytes_.store((count + want) << os::kPageShift, std::memory_order_release);
      return true;
    }
    if (want == pages) return false;
    want = std::max(pages, want / 2);
  }
}

size_t Arena::takeExtentLocked(size_t pages, bool* dirty) {
  Extent e;
  if (pages <= kBins && !bins_[pages].empty()) {
    e = bins_[pages].back();
    bins_[pages].popBack();
    return takeLocked(e, pages, dirty);
  }
  // Best fit among the big extents, then split larger binned ones.
  size_t best = kNoPage;
  for (size_t i = 0; i < big_.size(); ++i) {
    if (big_[i].pages >= pages && (best == kNoPage || big_[i].pages < big_[best].pages)) best = i;
  }
  if (best != kNoPage) {
    e = big_[best];
    big_.swapRemove(best);
  } else {
    size_t bin = pages + 1;
    while (bin <= kBins && bins_[bin].empty()) ++bin;
    if (bin > kBins) return kNoPage;
    e = bins_[bin].back();
    bins_[bin].popBack();
  }
  return takeLocked(e, pages, dirty);
}

// Hands out the first `pages` pages of e, which is off the free lists; the rest goes back.
size_t Arena::takeLocked(const Extent& e, size_t pages, bool* dirty) {
  if (e.decommitted && !os::commit(pageAddress(e.page), pages << os::kPageShift)) {
    putExtentLocked(e.page, e.pages, e.dirty, true);  // no charge to be had: out of memory
    return kNoPage;
  }
  if (e.pages > pages) putExtentLocked(e.page + pages, e.pages - pages, e.dirty, e.decommitted);
  *dirty = e.dirty;
  return e.page;
}

size_t Arena::takeBumpLocked(size_t pages, bool* dirty) {
  if (pages > pageCount() - bump_ && !growLocked(pages - (pageCount() - bump_))) return kNoPage;
  if (!commitLocked(bump_ + pages)) return kNoPage;
  size_t page = bump_;
  bump_ += pages;
  *dirty = false;
  return page;
}

void Arena::putExtentLocked(size_t page, size_t pages, bool dirty, bool decommitted) {
  Extent e{page, pages, dirty, decommitted};
  ++putsSinceCoalesce_;
  bool ok = pages <= kBins ? bins_[pages].pushBack(e) : big_.pushBack(e);
  if (!ok) {
    // No memory for bookkeeping: return the pages to the OS and forget them (a virtual leak
    // beats a crash). The dirty count must not include them.
    if (dirty) {
      releaseRangeLocked(page, pages);
      dirtyPages_ -= pages;
    }
  }
}

size_t Arena::allocPages(size_t pages, size_t alignPages, bool* zeroed) {
  if (pages == 0 || pages > maxPages_) return kNoPage;
  LockGuard guard(lock_);
  size_t page = allocPagesLocked(pages, alignPages, zeroed);
  // Out of space: a dirty run at the top of the used range becomes fresh space once released
  // (merging leaves it dirty rather than release it under the lock). Release it, try again.
  Extent top;
  if (page == kNoPage && takeDirtyTopLocked(&top) && releaseBatchLocked(&top, 1) > 0) {
    page = allocPagesLocked(pages, alignPages, zeroed);
  }
  return page;
}

size_t Arena::tryAllocPages(size_t pages, bool* zeroed) {
  if (pages == 0 || pages > maxPages_ || !lock_.tryLockBounded()) return kNoPage;
  size_t page = allocPagesLocked(pages, 1, zeroed);
  lock_.unlock();
  return page;
}

size_t Arena::allocPagesLocked(size_t pages, size_t alignPages, bool* zeroed) {
  size_t want = pages + (alignPages > 1 ? alignPages - 1 : 0);
  if (want < pages) return kNoPage;
  bool dirty = false;
  size_t page = takeExtentLocked(want, &dirty);
  // No free extent fits, but freed pages would if neighbours were merged: merge before taking
  // fresh pages, or freed memory is never reused for bigger requests and the process grows.
  // Merging sorts every extent, so it runs only after enough frees to pay for it.
  if (page == kNoPage && bump_ - inUsePages_ >= want + 256 &&
      putsSinceCoalesce_ >= 32 + extentsAtCoalesce_ / 4 && coalesceLocked()) {
    page = takeExtentLocked(want, &dirty);
  }
  if (page == kNoPage) page = takeBumpLocked(want, &dirty);
  // Out of fresh space: merge neighbouring free extents (which may also give pages back to the
  // bump region) and try both again.
  if (page == kNoPage && coalesceLocked()) {
    page = takeExtentLocked(want, &dirty);
    if (page == kNoPage) page = takeBumpLocked(want, &dirty);
  }
  if (page == kNoPage) return kNoPage;
  if (dirty) dirtyPages_ -= want;
  if (alignPages > 1) {
    // Align the address, not the page index: the arena base is only page aligned.
    size_t basePage = reinterpret_cast<uintptr_t>(base_) >> os::kPageShift;
    size_t aligned = ((basePage + page + alignPages - 1) & ~(alignPages - 1)) - basePage;
    if (aligned > page) putExtentLocked(page, aligned - page, dirty);
    size_t tail = page + want - (aligned + pages);
    if (tail > 0) putExtentLocked(aligned + pages, tail, dirty);
    if (dirty) dirtyPages_ += want - pages;
    page = aligned;
  }
  inUsePages_ += pages;
  *zeroed = !dirty;
  return page;
}

// Free pages are anonymous (see the invariant in arena.h): MADV_DONTNEED gives them back, in
// calls of at most kReleaseChunkPages. A range only partly released counts as not released.
// Under strict overcommit a long run is decommitted instead (decommitsOnRelease), which also
// gives its charge back; it is committed again when taken.
bool Arena::discardPages(size_t page, size_t pages) const {
  bool decommit = decommitsOnRelease(pages);
  for (size_t done = 0; done < pages;) {
    size_t n = std::min(pages - done, kReleaseChunkPages);
    void* addr = pageAddress(page + done);
    if (!(decommit ? os::decommit(addr, n << os::kPageShift) : discard_(addr, n << os::kPageShift))) return false;
    done += n;
  }
  return true;
}

// Pages from `page` up are above bump_ now: decommitted ones among them must be committed again
// before they are handed out, so the committed mark comes down to them.
void Arena::lowerCommittedLocked(size_t page) { committed_ = std::min(committed_, page); }

void Arena::discardExtents(const Extent* batch, size_t n, bool* ok) const {
  os::PageRange ranges[kReleaseBatch];
  size_t owner[kReleaseBatch];
  size_t count = 0, pages = 0;
  auto flush = [&] {
    if (count > 0 && !os::discardAnonymousBatch(ranges, count)) {
      for (size_t k = 0; k < count; ++k) ok[owner[k]] = discardPages(batch[owner[k]].page, batch[owner[k]].pages);
    }
    count = pages = 0;
  };
  for (size_t i = 0; i < n; ++i) {
    const Extent& e = batch[i];
    ok[i] = true;
    // Decommits, long runs and a test's discard function go one by one.
    if (discard_ != os::discardAnonymous || decommitsOnRelease(e.pages) || e.pages > kReleaseChunkPages) {
      ok[i] = discardPages(e.page, e.pages);
      continue;
    }
    if (pages + e.pages > kReleaseChunkPages) flush();
    ranges[count] = os::PageRange{pageAddress(e.page), e.pages << os::kPageShift};
    owner[count++] = i;
    pages += e.pages;
  }
  flush();
}

// Under the lock: only where no lock-free way exists (bookkeeping out of memory).
bool Arena::releaseRangeLocked(size_t page, size_t pages) {
  bool ok = discardPages(page, pages);
  if (ok) releasedPages_ += pages;
  return ok;
}

// batch[0, n) are off the free lists and out of dirtyPages_ (n <= kReleaseBatch). Discards them
// with the lock dropped, then puts them back: clean, or straight into the fresh space when one
// still ends at bump_; dirty when the OS refused.
size_t Arena::releaseBatchLocked(Extent* batch, size_t n) {
  bool ok[kReleaseBatch];
  lock_.unlock();
  discardExtents(batch, n, ok);
  lock_.lock();
  size_t released = 0;
  for (size_t i = 0; i < n; ++i) {
    const Extent& e = batch[i];
    if (!ok[i]) {
      dirtyPages_ += e.pages;
      putExtentLocked(e.page, e.pages, true);  // (a decommit that failed part way: still mapped)
      continue;
    }
    released += e.pages;
    bool decommitted = decommitsOnRelease(e.pages);
    if (e.page + e.pages == bump_) {
      bump_ = e.page;  // pages above bump_ read as zero: these do now
      if (decommitted) lowerCommittedLocked(e.page);
    } else {
      putExtentLocked(e.page, e.pages, false, decommitted);
    }
  }
  releasedPages_ += released;
  return released;
}

// Returns the pages of every extent dirty on entry to the OS, kReleaseBatch extents per drop of
// the lock (extents freed meanwhile wait for the next release, so frees cannot keep us here).
size_t Arena::releaseAllDirtyLocked() {
  size_t budget = dirtyPages_;
  size_t released = 0, failed = 0;
  size_t list = kBins + 1;  // big_, then bins_[kBins] down to bins_[1]
  while (budget > 0 && list > 0) {
    Extent batch[kReleaseBatch];
    size_t n = 0, pages = 0;
    for (; list > 0; --list) {
      MetaVector<Extent>& v = list > kBins ? big_ : bins_[list];
      for (size_t i = v.size(); i-- > 0 && n < kReleaseBatch;) {
        if (!v[i].dirty) continue;
        batch[n++] = v[i];
        pages += v[i].pages;
        v.swapRemove(i);  // the element moved to i was already looked at
      }
      if (n == kReleaseBatch) break;  // this list may hold more
    }
    if (n == 0) break;
    dirtyPages_ -= pages;
    size_t puts = putsSinceCoalesce_;
    size_t done = releaseBatchLocked(batch, n);
    putsSinceCoalesce_ = puts;  // putting extents back is not freeing them (merge heuristic)
    released += done;
    failed += pages - done;
    budget -= std::min(budget, pages);
  }
  // When the OS refuses (madvise failing), back off instead of retrying on every free: try
  // again only once the dirty total has doubled.
  releaseRetryPages_ = failed > 0 ? dirtyPages_ * 2 : 0;
  return released;
}

// Takes the dirty extent that ends at bump_, if any, off the free lists.
bool Arena::takeDirtyTopLocked(Extent* top) {
  auto take = [&](MetaVector<Extent>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i].dirty && v[i].page + v[i].pages == bump_) {
        *top = v[i];
        v.swapRemove(i);
        dirtyPages_ -= top->pages;
        return true;
      }
    }
    return false;
  };
  if (take(big_)) return true;
  for (auto& bin : bins_) {
    if (take(bin)) return true;
  }
  return false;
}

void Arena::freePages(size_t page, size_t pages, bool release) {
  LockGuard guard(lock_);
  inUsePages_ -= pages;
  ReleaseHook hook = releaseHook_.load(std::memory_order_relaxed);
  size_t dirtyAfter = dirtyPages_ + pages;
  bool deferred = hook != nullptr &&
                  (release || (dirtyAfter > maxDirtyPages_ && dirtyAfter > releaseRetryPages_)) && hook();
  if (release && !deferred) {
    Extent e{page, pages, true};
    if (releaseBatchLocked(&e, 1) > 0) return;  // else it went back dirty
  } else {
    dirtyPages_ += pages;
    putExtentLocked(page, pages, true);
  }
  // Return everything dirty at once: batching keeps the syscalls per freed page low.
  if (!deferred && dirtyPages_ > maxDirtyPages_ && dirtyPages_ > releaseRetryPages_) releaseAllDirtyLocked();
}

size_t Arena::releaseDirty() {
  LockGuard guard(lock_);
  return releaseAllDirtyLocked() << os::kPageShift;
}

// An extent taken for reuse leaves the lists, and what is put back (a split's rest, a merge) is
// a new extent, so an extent an earlier pass saw was not reused since.
size_t Arena::releaseAgedDirty(uint64_t budgetNs, bool newPass, bool* more) {
  LockGuard guard(lock_);
  size_t before = releasedPages_;
  uint64_t start = os::monotonicNs();
  bool inBudget = true;
  *more = false;
  if (newPass) decayPass_ = decayPass_ == 255 ? 1 : decayPass_ + 1;
  // Aged extents are released kReleaseBatch at a time (the lists do not change meanwhile: the
  // lock is held throughout).
  Extent* aged[kReleaseBatch];
  Extent batch[kReleaseBatch];
  size_t n = 0;
  auto release = [&] {
    bool ok[kReleaseBatch];
    discardExtents(batch, n, ok);
    for (size_t i = 0; i < n; ++i) {
      // A failed release leaves the extent dirty (and marked): tried again next time.
      if (!ok[i]) continue;
      aged[i]->dirty = false;
      aged[i]->decommitted = decommitsOnRelease(aged[i]->pages);
      dirtyPages_ -= aged[i]->pages;
      releasedPages_ += aged[i]->pages;
    }
    n = 0;
    inBudget = os::monotonicNs() - start < budgetNs;
  };
  auto visit = [&](Extent& e) {
    if (!e.dirty) return;
    if (e.seenInPass == 0) {
      if (newPass) e.seenInPass = decayPass_;
      return;
    }
    if (e.seenInPass == decayPass_) return;  // first seen by this pass
    if (!inBudget) {
      *more = true;
      return;
    }
    aged[n] = &e;
    batch[n++] = e;
    if (n == kReleaseBatch) release();
  };
  for (auto& bin : bins_) {
    for (Extent& e : bin) visit(e);
  }
  for (Extent& e : big_) visit(e);
  if (n > 0) release();
  return (releasedPages_ - before) << os::kPageShift;
}

// Merges neighbouring free extents (only when the bump region is exhausted). Returns true when
// anything merged.
bool Arena::coalesceLocked() {
  MetaVector<Extent> all;
  for (auto& bin : bins_) {
    for (Extent& e : bin) {
      if (!all.pushBack(e)) return false;
    }
  }
  for (Extent& e : big_) {
    if (!all.pushBack(e)) return false;
  }
  std::sort(all.begin(), all.end(), [](const Extent& a, const Extent& b) { return a.page < b.page; });
  size_t merged = 0;
  size_t out = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (out > 0 && all[out - 1].page + all[out - 1].pages == all[i].page &&
        all[out - 1].decommitted == all[i].decommitted) {
      all[out - 1].pages += all[i].pages;
      all[out - 1].dirty = all[out - 1].dirty || all[i].dirty;
      ++merged;
    } else {
      all[out++] = all[i];
    }
  }
  putsSinceCoalesce_ = 0;
  extentsAtCoalesce_ = out;
  if (merged == 0) return false;
  for (auto& bin : bins_) bin.clear();
  big_.clear();
  for (size_t i = 0; i < out; ++i) {
    // A clean extent reaching the bump pointer gives its pages back to the bump region. (Pages
    // above bump_ must read as zero: a dirty one stays here until a release, which runs without
    // the lock, gives it back; see releaseBatchLocked and allocPages.)
    if (all[i].page + all[i].pages == bump_ && !all[i].dirty) {
      bump_ = all[i].page;
      if (all[i].decommitted) lowerCommittedLocked(bump_);
      continue;
    }
    putExtentLocked(all[i].page, all[i].pages, all[i].dirty, all[i].decommitted);
  }
  // Recount dirty pages from scratch: merging may have marked clean pages dirty.
  dirtyPages_ = 0;
  for (auto& bin : bins_) {
    for (Extent& e : bin) dirtyPages_ += e.dirty ? e.pages : 0;
  }
  for (Extent& e : big_) dirtyPages_ += e.dirty ? e.pages : 0;
  putsSinceCoalesce_ = 0;  // (the re-puts above counted)
  return true;
}

ArenaStats Arena::stats() {
  LockGuard guard(lock_);
  return ArenaStats{reservedBytes(), inUsePages_ << os::kPageShift, dirtyPages_ << os::kPageShift,
                    releasedPages_ << os::kPageShift, view_ != nullptr};
}

bool Arena::aliasPages(size_t virtPage, size_t filePage, size_t pages) {
  if (view_ == nullptr || ((filePage + pages) << os::kPageShift) > viewBytes_) return false;
  return os::aliasSharedMapping(view_ + (filePage << os::kPageShift), pageAddress(virtPage),
                                pages << os::kPageShift);
}

// Through a view: the file's pages are allocated first (a failure is a refused mesh, never a
// fault). discard drops the view's page-table entries after the copy (the data stays in the
// file): the child's file at fork does, so its view never holds more than the span being
// copied. A mesh does not: dropping them is a TLB shootdown that interrupts every CPU running
// the program, and the entries go when the pages are punched; meanwhile a page mapped by the view
// and a span counts once in PSS (twice in RSS).
static bool copyIntoView(char* to, const char* from, size_t bytes, bool discard) {
  if (!os::populateWritable(to, bytes)) return false;
  std::memcpy(to, from, bytes);
  if (discard) os::discardAnonymous(to, bytes);
  return true;
}

bool Arena::writeFilePages(size_t filePage, size_t page, size_t pages) {
  return view_ != nullptr && ((filePage + pages) << os::kPageShift) <= viewBytes_ &&
         copyIntoView(view_ + (filePage << os::kPageShift), pageAddress(page), pages << os::kPageShift, false);
}

void Arena::prefaultPages(size_t page, size_t pages) {
  os::populateWritable(pageAddress(page), pages << os::kPageShift);
}

bool Arena::protectPages(size_t page, size_t pages, bool writable) {
  return os::protect(pageAddress(page), pages << os::kPageShift, writable);
}

bool Arena::unsharePages(size_t page, size_t pages) {
  size_t bytes = pages << os::kPageShift;
  if (!os::mapAnonymousFixed(pageAddress(page), bytes)) return false;
  // Same flags as the reservation around it, so the kernel can merge the mappings again.
  os::noHugePages(pageAddress(page), bytes);
  return true;
}

bool Arena::releaseFilePages(size_t filePage, size_t pages) {
  if (view_ == nullptr) return false;
  if (!os::removeSharedPages(view_ + (filePage << os::kPageShift), pages << os::kPageShift)) return false;
  noteReleased(pages);
  return true;
}

void Arena::noteReleased(size_t pages) {
  LockGuard guard(lock_);
  releasedPages_ += pages;
}

void Arena::freeUnsharedPages(size_t page, size_t pages) {
  LockGuard guard(lock_);
  inUsePages_ -= pages;
  putExtentLocked(page, pages, false);
}

size_t Arena::usedPageBound() {
  LockGuard guard(lock_);
  return bump_;
}

bool Arena::prepareChildFile() {
  // As large as ours if possible; else (no descriptor and strict overcommit, where a shared
  // anonymous file is charged in full) just large enough for the pages in use.
  for (size_t bytes : {viewBytes_, pageUp(std::min(bump_ << os::kPageShift, viewBytes_))}) {
    if (childView_ == nullptr && bytes > 0) {
      childView_ = makeFileView(bytes);
      childViewBytes_ = childView_ != nullptr ? bytes : 0;
    }
  }
  return childView_ != nullptr;
}

bool Arena::copyToChildFile(size_t page, size_t pages) {
  size_t offset = page << os::kPageShift, bytes = pages << os::kPageShift;
  return childView_ != nullptr && offset + bytes <= childViewBytes_ &&
         copyIntoView(childView_ + offset, pageAddress(page), bytes, true);
}

void Arena::dropChildFile() {
  if (childView_ != nullptr) os::unmap(childView_, childViewBytes_);
  childView_ = nullptr;
}

void Arena::adoptChildFile() {
  // The inherited view is the parent's file: unmapping it is all the child does with it.
  if (view_ != nullptr) os::unmap(view_, viewBytes_);
  view_ = childView_;
  viewBytes_ = childViewBytes_;
  childView_ = nullptr;
}

}  // namespace mesh
