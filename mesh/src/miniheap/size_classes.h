// Size classes for small objects (up to 16 KiB).
//
// Sizes are multiples of 16 (so every object is 16-byte aligned), four classes per doubling above
// 128 bytes. Each class gets the shortest span (1 to 16 pages) that its objects fill to within
// 1/32 (else the span with the least waste), with at most 256 objects per span (one 256-bit
// bitmap) and, where 16 pages allow it, at least 16 objects so a thread does not refill after
// every few allocations. The table is computed
// at compile time; the waste test prints it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mesh {

inline constexpr int kNumClasses = 36;
inline constexpr size_t kMaxSmallSize = 16384;
inline constexpr uint32_t kMaxObjectsPerSpan = 256;
inline constexpr uint32_t kMaxSpanPages = 16;
inline constexpr size_t kSpanPageBytes = 4096;  // the page size, which spans count in
// A class takes the shortest span (of at least 16 objects where 16 pages allow it) whose unused
// tail is under 1/kShortSpanWasteDivisor of the span; see makeClass.
inline constexpr uint64_t kShortSpanWasteDivisor = 32;
// Per-class tables of one cache line per class (the thread cache) are indexed with the class
// times this ("class line offset"), which malloc reads straight from the size table.
inline constexpr size_t kClassLineBytes = 64;

struct SizeClass {
  uint32_t size;        // object size in bytes
  uint32_t objects;     // objects per span (<= 256)
  uint32_t pages;       // span length in pages (<= 16)
  // floor((2^64 - 1) / size) + 1. For an offset below 2^32, one 64x64->128 multiply by it gives
  // both offset / size (the high half) and whether size divides offset (the low half is below
  // magic exactly then): Lemire, Kaser and Kurz, "Faster remainder by direct computation" (2019).
  uint64_t magic;
};

namespace detail {

constexpr uint32_t classSizeAt(int i) {
  if (i < 8) return static_cast<uint32_t>(16 * (i + 1));  // 16 .. 128
  int group = (i - 8) / 4;                                 // 128 * 2^group .. 256 * 2^group
  int step = (i - 8) % 4 + 1;
  uint32_t base = 128u << group;
  return base + static_cast<uint32_t>(step) * (base / 4);
}

constexpr SizeClass makeClass(uint32_t size) {
  uint32_t maxObjs = static_cast<uint32_t>(kMaxSpanPages * kSpanPageBytes / size);
  uint32_t minObjs = maxObjs < 16 ? maxObjs : 16;
  SizeClass best{size, 0, 0, 0};
  uint64_t bestWaste = ~0ull, bestSpan = 1;
  for (uint32_t pages = 1; pages <= kMaxSpanPages; ++pages) {
    uint64_t span = pages * kSpanPageBytes;
    uint64_t objs = span / size;
    if (objs > kMaxObjectsPerSpan) objs = kMaxObjectsPerSpan;
    if (objs < minObjs) continue;
    uint64_t waste = span - objs * size;
    // The shortest span that wastes under 1/32 of itself: fewer objects per span make two
    // partly used spans far likelier to mesh (their live slots must not collide), and a mesh
    // of a short span costs as many remaps as one of a long span.
    if (waste * kShortSpanWasteDivisor < span) {
      best = SizeClass{size, static_cast<uint32_t>(objs), pages, 0};
      break;
    }
    // Else the span that wastes the least (compare waste/span < bestWaste/bestSpan).
    if (best.pages == 0 || waste * bestSpan < bestWaste * span) {
      best.pages = pages;
      best.objects = static_cast<uint32_t>(objs);
      bestWaste = waste;
      bestSpan = span;
    }
  }
  best.magic = ~uint64_t{0} / size + 1;
  return best;
}

struct ClassTable {
  SizeClass classes[kNumClasses];
  // Class line offsets (class * kClassLineBytes), indexed by (n + 15) / 16 for n <= 16 KiB: one
  // load and no branch on the malloc path (2 KiB, of which a program touches the lines of the
  // sizes it uses).
  uint16_t lineBySize[kMaxSmallSize / 16 + 1];
};

constexpr ClassTable makeTable() {
  ClassTable t{};
  for (int i = 0; i < kNumClasses; ++i) t.classes[i] = makeClass(classSizeAt(i));
  int c = 0;
  for (uint32_t k = 0; k <= kMaxSmallSize / 16; ++k) {
    while (t.classes[c].size < k * 16) ++c;
    t.lineBySize[k] = static_cast<uint16_t>(c * kClassLineBytes);
  }
  return t;
}

}  // namespace detail

inline constexpr detail::ClassTable kClassTable = detail::makeTable();

inline const SizeClass& sizeClass(int cls) { return kClassTable.classes[cls]; }

// Class for a request of n bytes (n <= kMaxSmallSize), and the class times kClassLineBytes.
// malloc(0) gets the 16-byte class.
inline size_t classLineForSize(size_t n) { return kClassTable.lineBySize[(n + 15) >> 4]; }
inline int classForSize(size_t n) { return static_cast<int>(classLineForSize(n) / kClassLineBytes); }

// Smallest class holding n bytes whose size is a multiple of align (a power of two <= 4096), so
// every object of the class is align-aligned. -1 when none exists.
int classForAligned(size_t n, size_t align);

static_assert(detail::classSizeAt(kNumClasses - 1) == kMaxSmallSize);

// Every offset inside a span divided by its class size is below kMaxObjectsPerSpan: a slot
// number computed from any in-span offset indexes the 256-bit bitmaps (see
// MiniHeap::slotStartForOffset).
constexpr bool slotBoundInBitmap() {
  for (const SizeClass& c : kClassTable.classes) {
    if ((c.pages * kSpanPageBytes - 1) / c.size >= kMaxObjectsPerSpan) return false;
  }
  return true;
}
static_assert(slotBoundInBitmap());

}  // namespace mesh
