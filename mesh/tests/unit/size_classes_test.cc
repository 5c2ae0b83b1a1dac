#include <gtest/gtest.h>

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
    EXPECT_LE(size_t{sc.objects} * sc.size, size_t{sc.pages} * kClassPage);
    EXPECT_GE(sc.objects, 4u) << "class " << sc.size << " refills too often";
  }
}

// The magic multiply gives the quotient and the divisibility of every offset in a span (and
// well beyond: every offset a page-map entry can express).
TEST(SizeClasses, MagicDividesEveryOffsetExactly) {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClass& sc = sizeClass(c);
    for (uint64_t off = 0; off < 64 * kClassPage; ++off) {
      unsigned __int128 product = static_cast<unsigned __int128>(sc.magic) * off;
      ASSERT_EQ(static_cast<uint64_t>(product >> 64), off / sc.size) << "size " << sc.size << " off " << off;
      ASSERT_EQ(static_cast<uint64_t>(product) < sc.magic, off % sc.size == 0) << "size " << sc.size << " off " << off;
    }
  }
}

// Prints the table and the worst-case waste; fails if any class wastes more than 2% of its span.
TEST(SizeClasses, WorstCaseWasteIsSmall) {
  double worst = 0;
  int worstClass = 0;
  std::printf("class  size  pages  objects  waste-bytes  waste%%\n");
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClass& sc = sizeClass(c);
    size_t span = size_t{sc.pages} * kClassPage;
    size_t waste = span - size_t{sc.objects} * sc.size;
    double pct = 100.0 * static_cast<double>(waste) / static_cast<double>(span);
    std::printf("%5d %5u %6u %8u %12zu %6.2f\n", c, sc.size, sc.pages, sc.objects, waste, pct);
    if (pct > worst) worst = pct, worstClass = c;
  }
  std::printf("worst-case waste: %.2f%% (class %d, %u bytes)\n", worst, worstClass,
              sizeClass(worstClass).size);
  EXPECT_LE(worst, 2.0);
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
