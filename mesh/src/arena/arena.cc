#include "arena/arena.h"

#include <algorithm>

#include "common/log.h"

namespace mesh {

Arena::~Arena() {
  if (base_ != nullptr) os::unmap(base_, reservedBytes_);
  if (pageMap_ != nullptr) os::unmap(pageMap_, pageCount_ * sizeof(uintptr_t));
  os::closeFd(fd_);
}

bool Arena::reserve(size_t bytes) {
  size_t pages = bytes >> os::kPageShift;
  void* map = os::mapAnonymous(pages * sizeof(uintptr_t));
  if (map == nullptr) return false;
  void* range = os::mapAnonymous(bytes);
  if (range == nullptr) {
    os::unmap(map, pages * sizeof(uintptr_t));
    return false;
  }
  os::noHugePages(range, bytes);
  base_ = static_cast<char*>(range);
  reservedBytes_ = bytes;
  pageCount_ = pages;
  pageMap_ = static_cast<std::atomic<uintptr_t>*>(map);
  return true;
}

bool Arena::init(const ArenaConfig& config) {
  maxDirtyPages_ = config.maxDirtyBytes >> os::kPageShift;
  bool reserved = false;
  for (size_t bytes = config.reserveBytes; !reserved && bytes >= config.minReserveBytes; bytes /= 2) {
    reserved = reserve(bytes);
  }
  if (!reserved) return false;
  // The memfd only receives meshed spans: it is sized to the range (sparse, so this costs
  // nothing) so that a span's file offset is its arena offset. Without it, no meshing.
  if (config.useMemfd) {
    int fd = os::memfdCreate("libmesh-arena");
    if (fd >= 0 && !os::truncateFile(fd, reservedBytes_)) {
      os::closeFd(fd);
      fd = -1;
    }
    fd_ = fd;
  }
  return true;
}

size_t Arena::takeExtentLocked(size_t pages, bool* dirty) {
  if (pages <= kBins && !bins_[pages].empty()) {
    Extent e = bins_[pages].back();
    bins_[pages].popBack();
    *dirty = e.dirty;
    return e.page;
  }
  // Best fit among the big extents, then split larger binned ones.
  size_t best = kNoPage;
  for (size_t i = 0; i < big_.size(); ++i) {
    if (big_[i].pages >= pages && (best == kNoPage || big_[i].pages < big_[best].pages)) best = i;
  }
  Extent e;
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
  if (e.pages > pages) putExtentLocked(e.page + pages, e.pages - pages, e.dirty);
  *dirty = e.dirty;
  return e.page;
}

size_t Arena::takeBumpLocked(size_t pages, bool* dirty) {
  if (pages > pageCount_ - bump_) return kNoPage;
  size_t page = bump_;
  bump_ += pages;
  *dirty = false;
  return page;
}

void Arena::putExtentLocked(size_t page, size_t pages, bool dirty) {
  Extent e{page, pages, dirty};
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
  if (pages == 0 || pages > pageCount_) return kNoPage;
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
  if (pages == 0 || pages > pageCount_ || !lock_.tryLockBounded()) return kNoPage;
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
bool Arena::discardPages(size_t page, size_t pages) const {
  for (size_t done = 0; done < pages;) {
    size_t n = std::min(pages - done, kReleaseChunkPages);
    if (!discard_(pageAddress(page + done), n << os::kPageShift)) return false;
    done += n;
  }
  return true;
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
  for (size_t i = 0; i < n; ++i) ok[i] = discardPages(batch[i].page, batch[i].pages);
  lock_.lock();
  size_t released = 0;
  for (size_t i = 0; i < n; ++i) {
    const Extent& e = batch[i];
    if (!ok[i]) {
      dirtyPages_ += e.pages;
      putExtentLocked(e.page, e.pages, true);
      continue;
    }
    released += e.pages;
    if (e.page + e.pages == bump_) {
      bump_ = e.page;  // pages above bump_ read as zero: these do now
    } else {
      putExtentLocked(e.page, e.pages, false);
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
    if (out > 0 && all[out - 1].page + all[out - 1].pages == all[i].page) {
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
      continue;
    }
    putExtentLocked(all[i].page, all[i].pages, all[i].dirty);
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
  return ArenaStats{reservedBytes_, inUsePages_ << os::kPageShift, dirtyPages_ << os::kPageShift,
                    releasedPages_ << os::kPageShift, fd_ >= 0};
}

bool Arena::aliasPages(size_t virtPage, size_t filePage, size_t pages) {
  if (fd_ < 0) return false;
  size_t bytes = pages << os::kPageShift;
  if (os::mapShared(pageAddress(virtPage), bytes, fd_, filePage << os::kPageShift) == nullptr) return false;
  os::noHugePages(pageAddress(virtPage), bytes);
  return true;
}

bool Arena::writeFilePages(size_t filePage, size_t page, size_t pages) {
  return fd_ >= 0 && os::writeFileAt(fd_, filePage << os::kPageShift, pageAddress(page), pages << os::kPageShift);
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
  if (fd_ < 0) return false;
  if (!os::punchHole(fd_, filePage << os::kPageShift, pages << os::kPageShift)) return false;
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

bool Arena::makePrivateInChild(bool copyData) {
  if (fd_ < 0) return true;  // anonymous memory is already private after fork
  int fresh = os::memfdCreate("libmesh-arena");
  bool ok = fresh >= 0 && os::truncateFile(fresh, reservedBytes_);
  // Copy only the file's data extents: holes (never used or punched) stay holes.
  size_t limit = bump_ << os::kPageShift;
  for (size_t off = 0; ok && copyData && off < limit;) {
    int64_t data = os::seekData(fd_, off);
    if (data < 0 || static_cast<size_t>(data) >= limit) break;
    int64_t hole = os::seekHole(fd_, static_cast<size_t>(data));
    size_t end = hole < 0 ? limit : std::min(static_cast<size_t>(hole), limit);
    ok = os::copyFileRange(fd_, static_cast<size_t>(data), fresh, static_cast<size_t>(data),
                           end - static_cast<size_t>(data));
    off = end;
  }
  // The old file stays open through the mappings that still use it; the child never writes
  // to it through the descriptor (punching it would clear the parent's pages).
  os::closeFd(fd_);
  if (!ok) {
    os::closeFd(fresh);
    fd_ = -1;
    return !copyData;  // with no file-backed range nothing is shared: only meshing is off
  }
  fd_ = fresh;
  return true;
}

}  // namespace mesh
