// Page map entries: what the arena's page map stores for each page.
//   0           no object starts on this page (never used, interior of a large object, or free)
//   1           tombstone: a span or large object here was freed; a free() now is a double free
//   mh | k      page k (0..15) of the span described by miniheap mh (mh is 64-byte aligned)
#pragma once

#include <cstdint>

#include "miniheap/miniheap.h"

namespace mesh {

inline constexpr uintptr_t kTombstoneEntry = 1;
inline constexpr uintptr_t kPageInSpanMask = 63;

inline uintptr_t encodeEntry(MiniHeap* mh, size_t pageInSpan) {
  return reinterpret_cast<uintptr_t>(mh) | pageInSpan;
}
inline MiniHeap* entryMiniHeap(uintptr_t e) {
  return reinterpret_cast<MiniHeap*>(e & ~kPageInSpanMask);
}
inline size_t entryPageInSpan(uintptr_t e) { return e & kPageInSpanMask; }

}  // namespace mesh
