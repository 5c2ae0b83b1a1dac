#include "arena/arena.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "platform/os.h"

namespace mesh {
namespace {

ArenaConfig smallArena(bool memfd) {
  ArenaConfig c;
  c.reserveBytes = size_t{16} << 20;  // 4096 pages
  c.minReserveBytes = size_t{16} << 20;
  c.maxDirtyBytes = size_t{64} << 10;  // 16 pages
  c.useMemfd = memfd;
  return c;
}

class ArenaTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { ASSERT_TRUE(arena.init(smallArena(GetParam()))); }
  Arena arena;
};

TEST_P(ArenaTest, BackingMatchesConfiguration) {
  EXPECT_EQ(arena.memfdBacked(), GetParam());
  EXPECT_EQ(arena.pageCount(), 4096u);
}

TEST_P(ArenaTest, FreshPagesAreZeroAndDistinct) {
  bool zeroed = false;
  size_t a = arena.allocPages(3, 1, &zeroed);
  ASSERT_NE(a, kNoPage);
  EXPECT_TRUE(zeroed);
  size_t b = arena.allocPages(5, 1, &zeroed);
  ASSERT_NE(b, kNoPage);
  EXPECT_TRUE(b >= a + 3 || b + 5 <= a);
  char* p = arena.pageAddress(a);
  for (size_t i = 0; i < 3 * os::kPageSize; ++i) ASSERT_EQ(p[i], 0);
  std::memset(p, 0xab, 3 * os::kPageSize);
}

TEST_P(ArenaTest, FreedPagesAreReusedFirstAndDirtyOnesReportedNotZero) {
  bool zeroed;
  size_t a = arena.allocPages(2, 1, &zeroed);
  std::memset(arena.pageAddress(a), 1, 2 * os::kPageSize);
  arena.freePages(a, 2, false);
  size_t b = arena.allocPages(2, 1, &zeroed);
  EXPECT_EQ(a, b);
  EXPECT_FALSE(zeroed) << "a dirty extent must not be reported as zero";
  arena.freePages(b, 2, true);  // released: reads as zero afterwards
  size_t c = arena.allocPages(2, 1, &zeroed);
  EXPECT_EQ(c, a);
  EXPECT_TRUE(zeroed);
  for (size_t i = 0; i < 2 * os::kPageSize; ++i) ASSERT_EQ(arena.pageAddress(c)[i], 0);
}

TEST_P(ArenaTest, DirtyPagesBeyondTheLimitGoBackToTheOs) {
  bool zeroed;
  std::vector<size_t> pages;
  for (int i = 0; i < 32; ++i) {
    pages.push_back(arena.allocPages(1, 1, &zeroed));
    std::memset(arena.pageAddress(pages.back()), 7, os::kPageSize);
  }
  for (size_t p : pages) arena.freePages(p, 1, false);
  ArenaStats s = arena.stats();
  EXPECT_LE(s.dirtyBytes, size_t{64} << 10);
  EXPECT_GT(s.releasedBytes, 0u);
  size_t released = arena.releaseDirty();
  EXPECT_EQ(released + s.releasedBytes, arena.stats().releasedBytes);
  EXPECT_EQ(arena.stats().dirtyBytes, 0u);
}

// MESH_FREEPHYS_THREAD: with a hook that accepts, frees leave every release to releaseDirty()
// (called by the service thread); a hook that declines makes them release as before.
int g_hookCalls = 0;
bool g_hookAccepts = true;
bool countingHook() {
  ++g_hookCalls;
  return g_hookAccepts;
}

TEST_P(ArenaTest, ReleaseHookDefersEveryReleaseToReleaseDirty) {
  g_hookCalls = 0;
  g_hookAccepts = true;
  arena.setReleaseHook(countingHook);
  bool zeroed;
  std::vector<size_t> pages;
  for (int i = 0; i < 32; ++i) {
    pages.push_back(arena.allocPages(1, 1, &zeroed));
    std::memset(arena.pageAddress(pages.back()), 7, os::kPageSize);
  }
  size_t big = arena.allocPages(8, 1, &zeroed);
  for (size_t p : pages) arena.freePages(p, 1, false);
  arena.freePages(big, 8, true);  // "release at once" is deferred too
  ArenaStats s = arena.stats();
  EXPECT_EQ(s.releasedBytes, 0u);
  EXPECT_EQ(s.dirtyBytes, size_t{40} << 12);
  EXPECT_GT(g_hookCalls, 0);
  EXPECT_EQ(arena.releaseDirty(), size_t{40} << 12);
  EXPECT_EQ(arena.stats().dirtyBytes, 0u);
  // Reused pages are not claimed to be zero while a release is pending.
  arena.freePages(arena.allocPages(8, 1, &zeroed), 8, true);
  EXPECT_FALSE(arena.allocPages(8, 1, &zeroed) == kNoPage);
  EXPECT_FALSE(zeroed);

  g_hookAccepts = false;  // no thread to do it: the free releases itself
  size_t again = arena.allocPages(4, 1, &zeroed);
  arena.freePages(again, 4, true);
  EXPECT_EQ(arena.stats().releasedBytes, (size_t{40} << 12) + (size_t{4} << 12));
  arena.setReleaseHook(nullptr);
}

TEST_P(ArenaTest, AlignedAllocationsAreAligned) {
  bool zeroed;
  arena.allocPages(1, 1, &zeroed);  // misalign the bump pointer
  for (size_t align : {2u, 4u, 16u, 64u}) {
    size_t p = arena.allocPages(3, align, &zeroed);
    ASSERT_NE(p, kNoPage);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(arena.pageAddress(p)) % (align * os::kPageSize), 0u);
  }
}

TEST_P(ArenaTest, ExhaustionReturnsNoPageAndCoalescingRecoversSpace) {
  bool zeroed;
  std::vector<size_t> pages;
  size_t p;
  while ((p = arena.allocPages(16, 1, &zeroed)) != kNoPage) pages.push_back(p);
  EXPECT_EQ(pages.size(), 4096u / 16);
  EXPECT_EQ(arena.allocPages(1, 1, &zeroed), kNoPage);
  EXPECT_EQ(arena.allocPages(size_t{1} << 40, 1, &zeroed), kNoPage);
  for (size_t q : pages) arena.freePages(q, 16, false);
  // No single free extent is 1024 pages long: only merging neighbours can satisfy this.
  size_t big = arena.allocPages(1024, 1, &zeroed);
  EXPECT_NE(big, kNoPage);
}

TEST_P(ArenaTest, FreedNeighboursServeBiggerRequestsBeforeFreshPages) {
  // Small frees next to each other add up to a run a bigger request can use: the arena merges
  // them instead of growing into fresh pages (which would leave the freed ones resident).
  bool zeroed;
  std::vector<size_t> small;
  for (int i = 0; i < 256; ++i) small.push_back(arena.allocPages(2, 1, &zeroed));
  size_t fence = arena.allocPages(1, 1, &zeroed);  // keeps the merged run off the bump region
  ASSERT_NE(fence, kNoPage);
  for (size_t q : small) arena.freePages(q, 2, false);
  size_t boundBefore = arena.usedPageBound();
  for (int i = 0; i < 8; ++i) {
    size_t big = arena.allocPages(32, 1, &zeroed);
    ASSERT_NE(big, kNoPage);
    EXPECT_LE(big + 32, fence) << "took fresh pages while 512 freed pages were free";
  }
  EXPECT_EQ(arena.usedPageBound(), boundBefore);
}

TEST_P(ArenaTest, PageMapStartsEmpty) {
  for (size_t i = 0; i < arena.pageCount(); i += 97) EXPECT_EQ(arena.mapEntry(i), 0u);
  bool zeroed;
  ASSERT_EQ(arena.allocPages(6, 1, &zeroed), 0u);  // entries are written for pages handed out
  arena.setMapEntry(5, 0x40);
  EXPECT_EQ(arena.mapEntry(5), 0x40u);
  EXPECT_TRUE(arena.contains(arena.pageAddress(5)));
  EXPECT_FALSE(arena.contains(arena.base() + arena.pageCount() * os::kPageSize));
  EXPECT_FALSE(arena.contains(arena.base() - 1));
}

INSTANTIATE_TEST_SUITE_P(Backing, ArenaTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "memfd" : "anonymous"; });

// The reservation costs no commit charge: pages become read-write (charged under strict
// overcommit) in 4 MiB steps as they are handed out, and the range grows in place up to maxBytes.
TEST(ArenaInit, CommitsAsItGrowsAndGrowsInPlaceUpToItsLimit) {
  ArenaConfig c = smallArena(true);
  c.maxBytes = size_t{64} << 20;
  Arena arena;
  ASSERT_TRUE(arena.init(c));
  EXPECT_EQ(arena.committedBytes(), 0u);
  EXPECT_EQ(arena.reservedBytes(), size_t{16} << 20);
  bool zeroed;
  size_t first = arena.allocPages(1, 1, &zeroed);
  ASSERT_EQ(first, 0u);
  EXPECT_EQ(arena.committedBytes(), size_t{4} << 20);
  char* base = arena.base();
  // 16 MiB more than the first reservation: the range grows at its end, the base stays.
  std::vector<size_t> runs;
  for (int i = 0; i < 8; ++i) {
    size_t page = arena.allocPages(1024, 1, &zeroed);  // 4 MiB
    ASSERT_NE(page, kNoPage) << i;
    ASSERT_TRUE(zeroed);
    std::memset(arena.pageAddress(page), 0x5a, 1024 * os::kPageSize);
    runs.push_back(page);
  }
  EXPECT_EQ(arena.base(), base);
  EXPECT_GE(arena.reservedBytes(), size_t{33} << 20);
  EXPECT_TRUE(arena.contains(arena.pageAddress(runs.back())));
  EXPECT_LE(arena.committedBytes(), size_t{40} << 20);
  // Past maxBytes: no page, and what was handed out is intact.
  EXPECT_EQ(arena.allocPages(16 * 1024, 1, &zeroed), kNoPage);
  for (size_t page : runs) EXPECT_EQ(arena.pageAddress(page)[4095], 0x5a);
}

TEST(ArenaInit, FallsBackToSmallerReservations) {
  ArenaConfig c = smallArena(true);
  c.reserveBytes = size_t{1} << 50;  // 1 PiB cannot be reserved: halves until it fits
  Arena arena;
  ASSERT_TRUE(arena.init(c));
  EXPECT_LT(arena.pageCount() * os::kPageSize, size_t{1} << 50);
}

}  // namespace
}  // namespace mesh
