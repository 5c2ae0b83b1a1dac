#include <gtest/gtest.h>

#include <algorithm>

#include <cstdio>

#include "miniheap/size_classes.h"

namespace mesh {
namespace {

TEST(SizeClasses, EveryRequestFitsItsClassAndClassesAreTight) {
  for (size_t n = 0; n <= kMaxSmallSize; ++n) {
    int c = classForSize(n);
    ASSERT_GE(c, 0);
    ASSERT_LT(c, kNumClasses);
    ASSERT_GE(sizeClass(c).size, n) << n;
    if (c > 0) {
      ASSERT_LT(sizeClass(c - 1).size, n == 0 ? 1 : n) << "not the smallest class for " << n;
    }
  }
}

TEST(SizeClasses, SpansRespectBitmapAndPageLimits) {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClass& sc = sizeClass(c);
    EXPECT_EQ(sc.size % 16, 0u);
    EXPECT_LE(sc.objects, kMaxObjectsPerSpan);
    EXPECT_GE(sc.pages, 1u);
    EXPECT_LE(sc.pages, kMaxSpanPages);
    EXPECT_LE(size_t{sc.objects} * sc.size, size_t{sc.pages} * kSpanPageBytes);
    EXPECT_GE(sc.objects, 4u) << "class " << sc.size << " refills too often";
  }
}

// The magic multiply gives the quotient and the divisibility of every offset in a span (and
// well beyond: every offset a page-map entry can express).
TEST(SizeClasses, MagicDividesEveryOffsetExactly) {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClass& sc = sizeClass(c);
    for (uint64_t off = 0; off < 64 * kSpanPageBytes; ++off) {
      unsigned __int128 product = static_cast<unsigned __int128>(sc.magic) * off;
      ASSERT_EQ(static_cast<uint64_t>(product >> 64), off / sc.size) << "size " << sc.size << " off " << off;
      ASSERT_EQ(static_cast<uint64_t>(product) < sc.magic, off % sc.size == 0) << "size " << sc.size << " off " << off;
    }
  }
}

// Prints the table and the worst-case waste; fails if any class wastes 1/32 of its span or more
// (the bound makeClass trades for shorter spans).
TEST(SizeClasses, WorstCaseWasteIsSmall) {
  double worst = 0;
  int worstClass = 0;
  std::printf("class  size  pages  objects  waste-bytes  waste%%\n");
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClass& sc = sizeClass(c);
    size_t span = size_t{sc.pages} * kSpanPageBytes;
    size_t waste = span - size_t{sc.objects} * sc.size;
    double pct = 100.0 * static_cast<double>(waste) / static_cast<double>(span);
    std::printf("%5d %5u %6u %8u %12zu %6.2f\n", c, sc.size, sc.pages, sc.objects, waste, pct);
    if (pct > worst) worst = pct, worstClass = c;
  }
  std::printf("worst-case waste: %.2f%% (class %d, %u bytes)\n", worst, worstClass,
              sizeClass(worstClass).size);
  EXPECT_LT(worst, 100.0 / kShortSpanWasteDivisor);
}

// Meshing joins two spans only when their live slots do not collide: at a quarter full, two
// spans of 16 objects are disjoint about a third of the time, two of 128 objects almost never.
// So each class takes the shortest span that wastes under 1/32, which keeps the classes from
// 128 bytes to 1 KiB at 16-32 objects (16- to 64-byte objects have 64-256 in one page).
TEST(SizeClasses, SpansAreTheShortestThatWasteLittle) {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClass& sc = sizeClass(c);
    uint32_t minObjs = std::min<uint32_t>(16, kMaxSpanPages * kSpanPageBytes / sc.size);
    for (uint32_t pages = 1; pages < sc.pages; ++pages) {
      uint64_t span = pages * kSpanPageBytes;
      uint64_t objs = std::min<uint64_t>(span / sc.size, kMaxObjectsPerSpan);
      bool fits = objs >= minObjs && (span - objs * sc.size) * kShortSpanWasteDivisor < span;
      EXPECT_FALSE(fits) << "size " << sc.size << ": " << pages << " pages would do, not " << sc.pages;
    }
    if (sc.size >= 128 && sc.size <= 1024) {
      EXPECT_GE(sc.objects, 16u) << "size " << sc.size;
      EXPECT_LE(sc.objects, 32u) << "size " << sc.size;
    }
  }
  EXPECT_EQ(sizeClass(classForSize(160)).pages, 1u);  // 25 objects (was 5 pages, 128 objects)
  EXPECT_EQ(sizeClass(classForSize(320)).pages, 2u);  // 25 objects (was 5 pages, 64 objects)
}

TEST(SizeClasses, AlignedClassesAreMultiplesOfTheAlignment) {
  for (size_t align = 32; align <= 4096; align *= 2) {
    for (size_t n : {1ul, 17ul, 100ul, 1000ul, 4000ul, 4096ul, 9000ul}) {
      int c = classForAligned(n, align);
      ASSERT_GE(c, 0) << n << " " << align;
      EXPECT_EQ(sizeClass(c).size % align, 0u);
      EXPECT_GE(sizeClass(c).size, n);
    }
  }
  EXPECT_EQ(classForAligned(100, 8192), -1);
  EXPECT_EQ(classForAligned(kMaxSmallSize + 1, 64), -1);
}

}  // namespace
}  // namespace mesh
