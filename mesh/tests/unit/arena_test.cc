#include "arena/arena.h"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>
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

// Decay: a pass returns the free pages the previous pass saw free, and only those.
TEST_P(ArenaTest, DecayReturnsOnlyPagesLeftUnusedForAWholePass) {
  bool zeroed, more;
  constexpr uint64_t kLots = uint64_t{1} << 40;
  size_t old = arena.allocPages(4, 1, &zeroed);
  size_t reused = arena.allocPages(2, 1, &zeroed);
  size_t late = arena.allocPages(1, 1, &zeroed);
  size_t fence = arena.allocPages(1, 1, &zeroed);  // keeps the extents apart
  (void)fence;
  std::memset(arena.pageAddress(old), 7, 8 * os::kPageSize);
  arena.freePages(old, 4, false);
  arena.freePages(reused, 2, false);
  EXPECT_EQ(arena.stats().dirtyBytes, size_t{6} << 12);
  EXPECT_EQ(arena.releaseAgedDirty(kLots, true, &more), 0u) << "the first pass only marks";
  EXPECT_FALSE(more);
  // The 2-page extent is reused and freed again between the passes: it is new to the next one,
  // and so is the page freed after the first pass.
  EXPECT_EQ(arena.allocPages(2, 1, &zeroed), reused);
  EXPECT_FALSE(zeroed);
  arena.freePages(reused, 2, false);
  arena.freePages(late, 1, false);
  EXPECT_EQ(arena.releaseAgedDirty(kLots, false, &more), 0u) << "continuing the pass that saw them";
  EXPECT_EQ(arena.releaseAgedDirty(kLots, true, &more), size_t{4} << 12);
  EXPECT_EQ(arena.stats().dirtyBytes, size_t{3} << 12);
  EXPECT_EQ(arena.releaseAgedDirty(kLots, false, &more), 0u) << "seen by this pass only";
  // Released pages read as zero and are handed out as such.
  EXPECT_EQ(arena.allocPages(4, 1, &zeroed), old);
  EXPECT_TRUE(zeroed);
  for (size_t i = 0; i < 4 * os::kPageSize; ++i) ASSERT_EQ(arena.pageAddress(old)[i], 0);
  EXPECT_EQ(arena.releaseAgedDirty(kLots, true, &more), size_t{3} << 12);
  EXPECT_EQ(arena.stats().dirtyBytes, 0u);
}

TEST_P(ArenaTest, DecayWithoutBudgetLeavesTheRestForTheNextCall) {
  bool zeroed, more;
  std::vector<size_t> pages;
  Arena roomy;  // with room for more dirty pages than the fixture's 16
  ArenaConfig config = smallArena(GetParam());
  config.maxDirtyBytes = size_t{1} << 20;
  ASSERT_TRUE(roomy.init(config));
  // Separate extents (every other page stays allocated, so none merge): one batch and 5 more.
  const size_t extents = Arena::kReleaseBatch + 5;
  for (size_t i = 0; i < 2 * extents; ++i) pages.push_back(roomy.allocPages(1, 1, &zeroed));
  for (size_t i = 0; i < pages.size(); i += 2) {
    std::memset(roomy.pageAddress(pages[i]), 7, os::kPageSize);
    roomy.freePages(pages[i], 1, false);
  }
  roomy.releaseAgedDirty(uint64_t{1} << 40, true, &more);
  size_t first = roomy.releaseAgedDirty(0, true, &more);  // one batch, then out of time
  EXPECT_EQ(first, Arena::kReleaseBatch << 12);
  EXPECT_TRUE(more);
  EXPECT_EQ(roomy.releaseAgedDirty(uint64_t{1} << 40, false, &more), size_t{5} << 12);
  EXPECT_FALSE(more);
  EXPECT_EQ(roomy.stats().dirtyBytes, 0u);
  for (size_t i = 0; i < pages.size(); i += 2) {
    EXPECT_EQ(static_cast<const char*>(roomy.pageAddress(pages[i]))[100], 0) << "extent " << i / 2 << " kept its data";
  }
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

// --- releases run without the arena lock (issue 18, item 3) ----------------------------------
// A discard takes time in proportion to what it frees (MADV_DONTNEED of a large heap: tens of
// ms), so the arena lock is dropped around it. These tests replace the discard with a function
// that acts while the release is in progress.

Arena* g_arena = nullptr;
size_t g_nestedPage = kNoPage;
size_t g_nestedCalls = 0;

// What a signal handler that interrupts the release does: allocate without waiting for a lock.
bool discardWithNestedAlloc(void* addr, size_t len) {
  bool zeroed;
  if (g_nestedCalls++ == 0) g_nestedPage = g_arena->tryAllocPages(1, &zeroed);
  return os::discardAnonymous(addr, len);
}

TEST_P(ArenaTest, CodeNestedInAReleaseCanAllocate) {
  // Fails on a release that holds the lock: tryAllocPages on the same thread gives up.
  bool zeroed;
  size_t big = arena.allocPages(64, 1, &zeroed);
  std::memset(arena.pageAddress(big), 3, 64 * os::kPageSize);
  g_arena = &arena;
  g_nestedPage = kNoPage;
  g_nestedCalls = 0;
  arena.setDiscardForTest(discardWithNestedAlloc);
  arena.freePages(big, 64, true);
  arena.setDiscardForTest(os::discardAnonymous);
  EXPECT_EQ(g_nestedCalls, 1u);
  ASSERT_NE(g_nestedPage, kNoPage) << "the arena lock was held across the discard";
  EXPECT_TRUE(g_nestedPage < big || g_nestedPage >= big + 64) << "handed out pages being released";
  // Afterwards the released pages are free and clean; nothing is counted dirty.
  ArenaStats s = arena.stats();
  EXPECT_EQ(s.dirtyBytes, 0u);
  EXPECT_EQ(s.releasedBytes, size_t{64} << os::kPageShift);
  EXPECT_EQ(s.inUseBytes, (size_t{1} << os::kPageShift));
  size_t again = arena.allocPages(64, 1, &zeroed);
  ASSERT_NE(again, kNoPage);
  EXPECT_TRUE(zeroed);
  for (size_t i = 0; i < 64 * os::kPageSize; i += 512) ASSERT_EQ(arena.pageAddress(again)[i], 0);
}

std::atomic<int> g_phase{0};  // 1: discard in progress, 2: other thread allocated, 3: timed out

// The first call waits (at most 10 s) for the other thread's allocation; later ones do not.
bool discardWaitingForOtherThread(void* addr, size_t len) {
  int expected = 0;
  if (g_phase.compare_exchange_strong(expected, 1)) {
    for (int ms = 0; ms < 10000 && g_phase.load() == 1; ++ms) usleep(1000);
    expected = 1;
    g_phase.compare_exchange_strong(expected, 3);
  }
  return os::discardAnonymous(addr, len);
}

TEST_P(ArenaTest, AnotherThreadAllocatesWhileDirtyPagesAreReleased) {
  // More dirty extents than the limit (16 pages): a free releases all of them at once.
  bool zeroed;
  std::vector<size_t> pages;
  for (int i = 0; i < 16; ++i) {
    pages.push_back(arena.allocPages(1, 1, &zeroed));
    std::memset(arena.pageAddress(pages.back()), 9, os::kPageSize);
  }
  size_t last = arena.allocPages(4, 1, &zeroed);
  for (size_t p : pages) arena.freePages(p, 1, false);
  ASSERT_EQ(arena.stats().dirtyBytes, size_t{16} << os::kPageShift);
  g_phase.store(0);
  arena.setDiscardForTest(discardWaitingForOtherThread);
  std::thread releaser([&] { arena.freePages(last, 4, false); });  // 20 dirty pages > 16
  while (g_phase.load() == 0) std::this_thread::yield();
  size_t mine = arena.allocPages(2, 1, &zeroed);  // waited the whole discard (10 s) before
  int seen = g_phase.exchange(2);
  releaser.join();
  arena.setDiscardForTest(os::discardAnonymous);
  EXPECT_EQ(seen, 1) << "the allocation waited for the discard to end (arena lock held)";
  ASSERT_NE(mine, kNoPage);
  EXPECT_EQ(arena.stats().dirtyBytes, 0u);
  arena.forEachFreeExtentForTest([](size_t, size_t, bool dirty) { EXPECT_FALSE(dirty); });
}

size_t g_chunkCalls = 0;
size_t g_chunkNext = 0;
bool g_chunkOk = true;
char* g_chunkBase = nullptr;

bool recordChunk(void* addr, size_t len) {
  ++g_chunkCalls;
  char* a = static_cast<char*>(addr);
  if (g_chunkBase == nullptr) g_chunkBase = a;
  if (a != g_chunkBase + g_chunkNext || len == 0 || len > Arena::kReleaseChunkPages * os::kPageSize) g_chunkOk = false;
  g_chunkNext += len;
  return os::discardAnonymous(addr, len);
}

TEST_P(ArenaTest, LongReleasesAreDiscardedInBoundedCalls) {
  // The kernel holds a signal until a madvise call is done: no call covers more than 4 MiB.
  bool zeroed;
  size_t n = 3 * Arena::kReleaseChunkPages + 5;
  size_t big = arena.allocPages(n, 1, &zeroed);
  ASSERT_NE(big, kNoPage);
  g_chunkCalls = g_chunkNext = 0;
  g_chunkOk = true;
  g_chunkBase = nullptr;
  arena.setDiscardForTest(recordChunk);
  arena.freePages(big, n, true);
  arena.setDiscardForTest(os::discardAnonymous);
  EXPECT_EQ(g_chunkCalls, 4u);
  EXPECT_TRUE(g_chunkOk);
  EXPECT_EQ(g_chunkBase, arena.pageAddress(big));
  EXPECT_EQ(g_chunkNext, n * os::kPageSize);
}

bool refuseDiscard(void*, size_t) { return false; }

TEST_P(ArenaTest, AFailedReleaseStaysDirty) {
  bool zeroed;
  size_t a = arena.allocPages(8, 1, &zeroed);
  arena.allocPages(1, 1, &zeroed);  // keeps a off the top of the used range
  std::memset(arena.pageAddress(a), 5, 8 * os::kPageSize);
  arena.setDiscardForTest(refuseDiscard);
  arena.freePages(a, 8, true);
  EXPECT_EQ(arena.stats().dirtyBytes, size_t{8} << os::kPageShift);
  EXPECT_EQ(arena.releaseDirty(), 0u);
  EXPECT_EQ(arena.stats().dirtyBytes, size_t{8} << os::kPageShift);
  EXPECT_EQ(arena.stats().releasedBytes, 0u);
  arena.setDiscardForTest(os::discardAnonymous);
  size_t b = arena.allocPages(8, 1, &zeroed);
  EXPECT_EQ(b, a);
  EXPECT_FALSE(zeroed) << "a page whose release failed was reported as zero";
  EXPECT_EQ(arena.pageAddress(b)[0], 5);
  EXPECT_EQ(arena.stats().dirtyBytes, 0u);
}

TEST(ArenaRelease, DirtyRunAtTheTopIsReleasedWhenOutOfSpace) {
  // Dirty pages stay cached (high limit); the top run is too short on its own, but with the
  // fresh space above it the request fits once it is released.
  ArenaConfig c = smallArena(false);
  c.maxDirtyBytes = size_t{64} << 20;
  Arena arena;
  ASSERT_TRUE(arena.init(c));
  bool zeroed;
  size_t low = arena.allocPages(2048, 1, &zeroed);
  size_t top = arena.allocPages(1024, 1, &zeroed);
  ASSERT_NE(top, kNoPage);
  std::memset(arena.pageAddress(top), 6, 1024 * os::kPageSize);
  arena.freePages(top, 1024, false);
  EXPECT_EQ(arena.stats().dirtyBytes, size_t{1024} << os::kPageShift);
  size_t p = arena.allocPages(2048, 1, &zeroed);
  ASSERT_NE(p, kNoPage);
  EXPECT_EQ(p, top);
  EXPECT_TRUE(zeroed);
  for (size_t i = 0; i < 2048 * os::kPageSize; i += 4096) ASSERT_EQ(arena.pageAddress(p)[i], 0);
  EXPECT_EQ(arena.stats().dirtyBytes, 0u);
  EXPECT_EQ(arena.stats().releasedBytes, size_t{1024} << os::kPageShift);
  arena.freePages(low, 2048, false);
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

// Whether the running kernel is at least major.minor (process_madvise with any advice on the
// calling process: 6.13; PIDFD_SELF: 6.15).
bool KernelAtLeast(int major, int minor) {
  struct utsname u {};
  int ma = 0, mi = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

TEST(OsDiscard, BatchDiscardsExactlyTheListedRangesAndKeepsErrno) {
  const size_t page = os::kPageSize;
  auto* p = static_cast<char*>(mmap(nullptr, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 0x5a, 8 * page);
  os::PageRange ranges[] = {{p + page, page}, {p + 3 * page, 2 * page}, {p + 6 * page, page}};
  errno = EDOM;
  bool batched = os::discardAnonymousBatch(ranges, 3);
  EXPECT_EQ(errno, EDOM);
  if (KernelAtLeast(6, 15)) {
    EXPECT_TRUE(batched) << "one call for all ranges on this kernel";
  } else if (!batched) {
    for (auto& r : ranges) ASSERT_TRUE(os::discardAnonymous(r.addr, r.len));  // what the arena does
  }
  const bool discarded[8] = {false, true, false, true, true, false, true, false};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p[i * page + 17], discarded[i] ? 0 : 0x5a) << "page " << i;
  EXPECT_TRUE(os::discardAnonymousBatch(ranges, 0));
  munmap(p, 8 * page);
}

TEST(OsDiscard, AnUnmappedRangeFailsTheBatchButNotTheNext) {
  if (!KernelAtLeast(6, 15)) GTEST_SKIP() << "no batched discard before Linux 6.15";
  const size_t page = os::kPageSize;
  auto* p = static_cast<char*>(mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  ASSERT_EQ(munmap(p + 2 * page, 2 * page), 0);
  std::memset(p, 0x5a, 2 * page);
  os::PageRange bad[] = {{p, page}, {p + 2 * page, page}};
  errno = EDOM;
  EXPECT_FALSE(os::discardAnonymousBatch(bad, 2));
  EXPECT_EQ(errno, EDOM);
  os::PageRange good[] = {{p + page, page}};
  EXPECT_TRUE(os::discardAnonymousBatch(good, 1)) << "a failed range turned batching off";
  EXPECT_EQ(p[page], 0);
  munmap(p, 2 * page);
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
