// Page map entries: what the arena's page map stores for each page.
//   0           no object starts on this page (never used, interior of a large object, or free)
//   1           tombstone: a span or large object here was freed; a free() now is a double free
//   mh << 16 | k << 12
//               page k (0..15) of the span described by miniheap mh. The free fast path gets
//               the miniheap with one shift and the page's byte offset in its span with one
//               mask (entryOffsetInSpan). Metadata addresses are below 2^48 (user space).
#pragma once

#include <cstdint>

#include "common/log.h"
#include "miniheap/miniheap.h"

namespace mesh {

inline constexpr uintptr_t kTombstoneEntry = 1;
inline constexpr unsigned kEntryMiniHeapShift = 16;
inline constexpr unsigned kEntryPageShift = 12;
static_assert(kMaxSpanPages <= (1u << (kEntryMiniHeapShift - kEntryPageShift)));

inline uintptr_t encodeEntry(MiniHeap* mh, size_t pageInSpan) {
  uintptr_t a = reinterpret_cast<uintptr_t>(mh);
  if (a >> (64 - kEntryMiniHeapShift) != 0) fatalPointer("span metadata above 2^48 at", mh);
  return a << kEntryMiniHeapShift | pageInSpan << kEntryPageShift;
}
inline MiniHeap* entryMiniHeap(uintptr_t e) { return reinterpret_cast<MiniHeap*>(e >> kEntryMiniHeapShift); }
inline size_t entryPageInSpan(uintptr_t e) {
  return (e >> kEntryPageShift) & ((uintptr_t{1} << (kEntryMiniHeapShift - kEntryPageShift)) - 1);
}
// The byte offset of the entry's page in its span. Only for an entry with a miniheap.
inline size_t entryOffsetInSpan(uintptr_t e) { return e & ((uintptr_t{1} << kEntryMiniHeapShift) - 1); }

}  // namespace mesh
