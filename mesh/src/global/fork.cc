// fork support for the global heap: see "fork" in global_heap.h for the protocol.
//
// Everything but the meshed spans is private anonymous memory, which the kernel copies lazily.
// Meshed spans are mappings of the heap's shared file, and a shared mapping stays shared across
// fork. So, before fork, with every allocator lock held:
//   1. every range mapped onto the file is made read-only under the write barrier (a parent
//      thread that writes to a meshed object waits in the SIGSEGV handler until step 4);
//   2. a new file is made and the data of each file-backed span is copied into it;
// then fork runs, and
//   3. the child maps each of its file-backed ranges onto the new file (read-write again) and
//      drops its mapping of the parent's file;
//   4. the parent forgets the new file and makes its ranges writable again.
// Nothing written after step 1 reaches the copy and nothing the child writes reaches the
// parent. The cost is proportional to the meshed data, not to the heap.
#include "common/log.h"
#include "global/global_heap.h"
#include "meshing/write_barrier.h"
#include "miniheap/page_entry.h"

namespace mesh {

template <typename F>
bool GlobalHeap::forEachFileRangeLocked(F&& f) {
  size_t bound = arena_.usedPageBoundLocked();
  size_t runStart = 0, runEnd = 0;  // file-backed spans at their own offsets, contiguous
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
      ok = f(page, mh->spanPage(), pages) && ok;  // a span meshed into mh
    } else if (page == runEnd) {
      runEnd += pages;
    } else {
      if (runEnd > runStart) ok = f(runStart, runStart, runEnd - runStart) && ok;
      runStart = page;
      runEnd = page + pages;
    }
    page += pages;
  }
  if (runEnd > runStart) ok = f(runStart, runStart, runEnd - runStart) && ok;
  return ok;
}

bool GlobalHeap::reserveForkFile() {
  if (!forkNeedsFileCopy()) return true;
  arena_.lockForFork();
  bool ok = arena_.prepareChildFile();
  arena_.unlockAfterFork();
  return ok;
}

void GlobalHeap::lockAll() {
  mesher_.lockForFork();
  for (ClassState& c : classes_) c.lock.lock();
  arena_.lockForFork();
  metaLock_.lock();
}

bool GlobalHeap::prepareFork() {
  forkCopied_ = false;
  if (!forkNeedsFileCopy()) return true;
  if (!arena_.prepareChildFile()) return false;
  barrier::begin();
  auto writable = [&](bool on) {
    return forEachFileRangeLocked([&](size_t page, size_t, size_t pages) { return arena_.protectPages(page, pages, on); });
  };
  bool ok = writable(false) && forEachFileRangeLocked([&](size_t page, size_t filePage, size_t pages) {
    return page != filePage || arena_.copyToChildFile(page, pages);
  });
  if (!ok) {
    if (!writable(true)) fatal("fork: could not make the meshed heap writable again");
    barrier::end();
    arena_.dropChildFile();
    return false;
  }
  forkCopied_ = true;
  return true;
}

void GlobalHeap::finishForkInParent() {
  if (!forkCopied_) return;
  arena_.dropChildFile();
  bool ok = forEachFileRangeLocked([&](size_t page, size_t, size_t pages) { return arena_.protectPages(page, pages, true); });
  if (!ok) fatal("fork: could not make the meshed heap writable again");
  barrier::end();
  forkCopied_ = false;
}

void GlobalHeap::unlockAll() {
  metaLock_.unlock();
  arena_.unlockAfterFork();
  for (ClassState& c : classes_) c.lock.unlock();
  mesher_.unlockAfterFork();
}

bool GlobalHeap::finishForkInChild() {
  bool ok = true;
  if (forkCopied_) {
    // Only metadata (anonymous, so the child's own) is read here, never the parent's file.
    arena_.adoptChildFile();
    ok = forEachFileRangeLocked([&](size_t page, size_t filePage, size_t pages) {
      return arena_.aliasPages(page, filePage, pages);
    });
    barrier::end();
    forkCopied_ = false;
  }
  arena_.dropChildFile();  // one reserved by another thread's fork() and not used by this one
  metaLock_.resetAfterFork();
  arena_.unlockAfterFork();
  for (ClassState& c : classes_) c.lock.resetAfterFork();
  mesher_.resetInChild();
  return ok;
}

}  // namespace mesh
