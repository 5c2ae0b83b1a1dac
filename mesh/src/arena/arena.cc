#include "arena/arena.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace mesh {

Arena::~Arena() {
  if (base_ != nullptr) os::unmap(base_, reservedBytes_);
  if (pageMap_ != nullptr) os::unmap(pageMap_, pageCount_ * sizeof(uintptr_t));
  if (view_ != nullptr) os::unmap(view_, reservedBytes_);
  if (childView_ != nullptr) os::unmap(childView_, reservedBytes_);
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

char* Arena::makeFileView() const {
  auto* view = static_cast<char*>(os::createSharedFile(reservedBytes_));
  // Mappings duplicated from the view take its flags: the same as the range's, so that the
  // kernel can merge neighbouring ones.
  if (view != nullptr) os::noHugePages(view, reservedBytes_);
  return view;
}

bool Arena::init(const ArenaConfig& config) {
  maxDirtyPages_ = config.maxDirtyBytes >> os::kPageShift;
  bool reserved = false;
  for (size_t bytes = config.reserveBytes; !reserved && bytes >= config.minReserveBytes; bytes /= 2) {
    reserved = reserve(bytes);
  }
  if (!reserved) return false;
  // The file only receives meshed spans: it is sized to the range (sparse, so this costs
  // nothing) so that a span's file offset is its arena offset. Without it, no meshing.
  if (config.useMemfd) view_ = makeFileView();
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
  return allocPagesLocked(pages, alignPages, zeroed);
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

// Free pages are anonymous (see the invariant in arena.h): MADV_DONTNEED gives them back.
bool Arena::releaseRangeLocked(size_t page, size_t pages) {
  bool ok = os::discardAnonymous(pageAddress(page), pages << os::kPageShift);
  if (ok) releasedPages_ += pages;
  return ok;
}

// Returns every dirty extent's pages to the OS. An extent whose release fails stays dirty, so
// it is never mistaken for zeroed memory.
void Arena::releaseAllDirtyLocked() {
  size_t stillDirty = 0;
  auto releaseOne = [&](Extent& e) {
    if (e.dirty && releaseRangeLocked(e.page, e.pages)) e.dirty = false;
    stillDirty += e.dirty ? e.pages : 0;
  };
  for (auto& bin : bins_) {
    for (Extent& e : bin) releaseOne(e);
  }
  for (Extent& e : big_) releaseOne(e);
  dirtyPages_ = stillDirty;
  // When the OS refuses (fallocate or madvise failing), back off instead of retrying on every
  // free: try again only once the dirty total has doubled.
  releaseRetryPages_ = stillDirty > 0 ? stillDirty * 2 : 0;
}

void Arena::freePages(size_t page, size_t pages, bool release) {
  LockGuard guard(lock_);
  inUsePages_ -= pages;
  ReleaseHook hook = releaseHook_.load(std::memory_order_relaxed);
  size_t dirtyAfter = dirtyPages_ + pages;
  bool deferred = hook != nullptr &&
                  (release || (dirtyAfter > maxDirtyPages_ && dirtyAfter > releaseRetryPages_)) && hook();
  if (release && !deferred && releaseRangeLocked(page, pages)) {
    putExtentLocked(page, pages, false);
    return;
  }
  dirtyPages_ += pages;
  putExtentLocked(page, pages, true);
  // Return everything dirty at once: batching keeps the syscalls per freed page low.
  if (!deferred && dirtyPages_ > maxDirtyPages_ && dirtyPages_ > releaseRetryPages_) releaseAllDirtyLocked();
}

size_t Arena::releaseDirty() {
  LockGuard guard(lock_);
  size_t before = releasedPages_;
  releaseAllDirtyLocked();
  return (releasedPages_ - before) << os::kPageShift;
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
    // A failed release leaves the extent dirty (and marked): tried again next time.
    if (releaseRangeLocked(e.page, e.pages)) {
      e.dirty = false;
      dirtyPages_ -= e.pages;
    }
    inBudget = os::monotonicNs() - start < budgetNs;
  };
  for (auto& bin : bins_) {
    for (Extent& e : bin) visit(e);
  }
  for (Extent& e : big_) visit(e);
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
    // An extent reaching the bump pointer gives its pages back to the bump region.
    // (Pages above bump_ must read as zero, so a dirty one is released first.)
    if (all[i].page + all[i].pages == bump_ &&
        (!all[i].dirty || releaseRangeLocked(all[i].page, all[i].pages))) {
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
                    releasedPages_ << os::kPageShift, view_ != nullptr};
}

bool Arena::aliasPages(size_t virtPage, size_t filePage, size_t pages) {
  if (view_ == nullptr) return false;
  return os::aliasSharedMapping(view_ + (filePage << os::kPageShift), pageAddress(virtPage),
                                pages << os::kPageShift);
}

// Through the view: the file's pages are allocated first (a failure is a refused mesh, never a
// fault), and the view's page-table entries are dropped after the copy (the data stays in the
// file), so the view never holds more than the span being copied.
static bool copyIntoView(char* to, const char* from, size_t bytes) {
  if (!os::populateWritable(to, bytes)) return false;
  std::memcpy(to, from, bytes);
  os::discardAnonymous(to, bytes);
  return true;
}

bool Arena::writeFilePages(size_t filePage, size_t page, size_t pages) {
  return view_ != nullptr &&
         copyIntoView(view_ + (filePage << os::kPageShift), pageAddress(page), pages << os::kPageShift);
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
  if (childView_ == nullptr) childView_ = makeFileView();
  return childView_ != nullptr;
}

bool Arena::copyToChildFile(size_t page, size_t pages) {
  size_t offset = page << os::kPageShift;
  return childView_ != nullptr && copyIntoView(childView_ + offset, pageAddress(page), pages << os::kPageShift);
}

void Arena::dropChildFile() {
  if (childView_ != nullptr) os::unmap(childView_, reservedBytes_);
  childView_ = nullptr;
}

void Arena::adoptChildFile() {
  // The inherited view is the parent's file: unmapping it is all the child does with it.
  if (view_ != nullptr) os::unmap(view_, reservedBytes_);
  view_ = childView_;
  childView_ = nullptr;
}

}  // namespace mesh
