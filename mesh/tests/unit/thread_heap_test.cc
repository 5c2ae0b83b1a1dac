#include "thread/thread_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "test_heap_fixture.h"

namespace mesh {
namespace {

using test::FreshHeap;

void freeAny(GlobalHeap& heap, ThreadHeap& th, void* p) {
  uintptr_t e = heap.entryFor(p);
  MiniHeap* mh = entryMiniHeap(e);
  ASSERT_NE(mh, nullptr);
  if (mh->owner() == &th) {
    th.freeOwned(mh, static_cast<char*>(p) - heap.spanStartFor(p, e), p);
  } else {
    uint32_t slot;
    ASSERT_TRUE(mh->slotForOffset(static_cast<char*>(p) - heap.spanStartFor(p, e), &slot));
    heap.freeNonOwner(p, e, slot);
  }
}

TEST_F(FreshHeap, ThreadHeapHandsOutDistinctAlignedObjects) {
  ThreadHeap th(heap.get(), 1);
  std::set<char*> seen;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    for (int i = 0; i < 600; ++i) {
      auto* p = static_cast<char*>(th.alloc(cls));
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
      ASSERT_TRUE(seen.insert(p).second) << "handed out twice";
      std::memset(p, cls, sizeClass(cls).size);
    }
  }
  for (char* p : seen) freeAny(*heap, th, p);
  th.detachAll();
  heap->releaseFreeMemory();
  EXPECT_EQ(heap->stats().mhLive, 0u);
}

// The cache keeps each free slot twice, as a slot number (for the bitmap) and as an address
// (what malloc returns): the object handed out must be the slot the bitmap marks live, through
// local frees, remote frees folded in by a refill, and new spans.
TEST_F(FreshHeap, EveryObjectHandedOutIsTheSlotMarkedLive) {
  ThreadHeap th(heap.get(), 11);
  ThreadHeap remote(heap.get(), 12);
  const int cls = 3;
  std::vector<void*> live;
  auto slotOf = [&](void* p, MiniHeap** mhOut) {
    uintptr_t e = heap->entryFor(p);
    MiniHeap* mh = entryMiniHeap(e);
    uint32_t slot = ~0u;
    EXPECT_TRUE(mh->slotForOffset(static_cast<char*>(p) - heap->spanStartFor(p, e), &slot));
    *mhOut = mh;
    return slot;
  };
  uint64_t rng = 99;
  for (int round = 0; round < 2000; ++round) {
    void* p = th.alloc(cls);
    ASSERT_NE(p, nullptr);
    MiniHeap* mh = nullptr;
    uint32_t slot = slotOf(p, &mh);
    ASSERT_TRUE(mh->isLive(slot)) << "round " << round << ": handed out a slot the bitmap calls free";
    ASSERT_EQ(mh->slotAddress(slot), p);
    live.push_back(p);
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    if ((rng >> 60) < 7 && !live.empty()) {  // free a random live object, locally or remotely
      size_t i = (rng >> 20) % live.size();
      void* q = live[i];
      live[i] = live.back();
      live.pop_back();
      MiniHeap* qmh = nullptr;
      uint32_t qslot = slotOf(q, &qmh);
      freeAny(*heap, (rng >> 40) & 1 ? th : remote, q);
      if (qmh->owner() == &th && !qmh->isRemoteFreed(qslot)) {
        EXPECT_FALSE(qmh->isLive(qslot));
      }
    }
  }
  for (void* p : live) freeAny(*heap, th, p);
  th.detachAll();
  remote.detachAll();
  heap->releaseFreeMemory();
  EXPECT_EQ(heap->stats().mhLive, 0u);
}

TEST_F(FreshHeap, PlacementInsideASpanIsRandomized) {
  ThreadHeap a(heap.get(), 1), b(heap.get(), 2);
  std::vector<uintptr_t> offsetsA, offsetsB;
  for (int i = 0; i < 16; ++i) {
    offsetsA.push_back(reinterpret_cast<uintptr_t>(a.alloc(0)) & 4095);
    offsetsB.push_back(reinterpret_cast<uintptr_t>(b.alloc(0)) & 4095);
  }
  EXPECT_NE(offsetsA, offsetsB) << "two seeds gave the same slot order";
  bool sequential = true;
  for (size_t i = 1; i < offsetsA.size(); ++i) sequential &= offsetsA[i] == offsetsA[i - 1] + 16;
  EXPECT_FALSE(sequential);
}

// Offsets in its span of the objects of a thread heap's second span of class 0 (256 slots of 16
// bytes): the first span of a class is always placed slot by slot (ThreadHeap::shuffle).
std::vector<uintptr_t> secondSpanOffsets(ThreadHeap& th) {
  for (int i = 0; i < 256; ++i) th.alloc(0);
  std::vector<uintptr_t> offsets;
  for (int i = 0; i < 256; ++i) offsets.push_back(reinterpret_cast<uintptr_t>(th.alloc(0)) & 4095);
  return offsets;
}

size_t stepsToTheNextSlot(const std::vector<uintptr_t>& offsets) {
  size_t steps = 0;
  for (size_t i = 1; i < offsets.size(); ++i) steps += offsets[i] == offsets[i - 1] + 16;
  return steps;
}

TEST_F(FreshHeap, ALoneThreadHeapPlacesItsLaterSpansInWindowsOfAddressOrder) {
  ThreadHeap th(heap.get(), 3);
  std::vector<uintptr_t> offsets = secondSpanOffsets(th);
  // 32 windows of 8 slots: each window's objects come in address order from a multiple of 8.
  std::vector<uintptr_t> firsts;
  for (size_t w = 0; w < 32; ++w) {
    uintptr_t start = offsets[w * 8];
    EXPECT_EQ(start % (8 * 16), 0u) << "window " << w << " does not start on a window boundary";
    for (size_t k = 1; k < 8; ++k) EXPECT_EQ(offsets[w * 8 + k], start + k * 16) << "window " << w;
    firsts.push_back(start);
  }
  std::vector<uintptr_t> sorted = firsts;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "a window came twice";
  EXPECT_NE(firsts, sorted) << "the windows are not in random order";
}

TEST_F(FreshHeap, PlacementStaysSlotBySlotInTheFirstSpanAndWithTwoThreadHeaps) {
  {
    ThreadHeap lone(heap.get(), 4);
    std::vector<uintptr_t> first;
    for (int i = 0; i < 256; ++i) first.push_back(reinterpret_cast<uintptr_t>(lone.alloc(0)) & 4095);
    EXPECT_LT(stepsToTheNextSlot(first), 32u) << "the first span of a class was placed in windows";
  }
  ThreadHeap a(heap.get(), 5), b(heap.get(), 6);
  EXPECT_LT(stepsToTheNextSlot(secondSpanOffsets(a)), 32u) << "windows with two live thread heaps";
}

TEST_F(FreshHeap, CrossThreadFreesAreReclaimedByTheOwner) {
  ThreadHeap owner(heap.get(), 7);
  std::vector<void*> objs;
  for (int i = 0; i < 5000; ++i) objs.push_back(owner.alloc(2));
  std::thread other([&] {
    ThreadHeap th(heap.get(), 8);
    for (void* p : objs) freeAny(*heap, th, p);
    th.detachAll();
  });
  other.join();
  // The spans got their objects back through the remote bitmaps (or, emptied, were released):
  // allocating as many objects again needs no more spans than they fill, plus the one a thread
  // keeps attached.
  for (int i = 0; i < 5000; ++i) ASSERT_NE(owner.alloc(2), nullptr);
  size_t needed = (5000 + sizeClass(2).objects - 1) / sizeClass(2).objects;
  EXPECT_LE(heap->stats().mhLive, needed + 1) << "freed memory was not reused";
  owner.detachAll();
}

TEST_F(FreshHeap, DetachAllReturnsEverythingWhenObjectsAreFreedLater) {
  std::vector<void*> objs;
  {
    ThreadHeap th(heap.get(), 3);
    for (int i = 0; i < 3000; ++i) objs.push_back(th.alloc(i % kNumClasses));
    th.detachAll();  // thread exit with live objects
  }
  ThreadHeap other(heap.get(), 4);
  for (void* p : objs) freeAny(*heap, other, p);
  other.detachAll();
  heap->releaseFreeMemory();
  EXPECT_EQ(heap->stats().mhLive, 0u);
}

TEST_F(FreshHeap, ThreadHeapDeathOnDoubleAndInvalidFree) {
  ThreadHeap th(heap.get(), 5);
  auto* p = static_cast<char*>(th.alloc(6));
  uintptr_t e = heap->entryFor(p);
  MiniHeap* mh = entryMiniHeap(e);
  EXPECT_DEATH(th.freeOwned(mh, p + 8 - heap->spanStartFor(p, e), p + 8), "mesh: invalid free of 0x");
  th.freeOwned(mh, p - heap->spanStartFor(p, e), p);
  EXPECT_DEATH(th.freeOwned(mh, p - heap->spanStartFor(p, e), p), "mesh: double free of 0x");
}

// A stack's objects that stayed below its low-water mark between two visits were not needed:
// each visit returns three quarters of them, oldest first, and objects malloc took in between
// lower the mark.
TEST_F(FreshHeap, IdleVisitsReturnTheUnusedBottomOfAStack) {
  ThreadHeap th(heap.get(), 21);
  const int cls = 2;  // 48 bytes
  ASSERT_EQ(th.freedCapacity(cls), kMinFreedPerClass);
  std::vector<void*> objs;
  for (int i = 0; i < 60; ++i) objs.push_back(th.alloc(cls));
  for (void* p : objs) ASSERT_TRUE(th.pushFreed(cls, p));
  auto flushed = [&](uint32_t n) {
    std::vector<void*> rejected;
    uint32_t done = th.flushFreed(cls, n, [&](void* p) { rejected.push_back(p); });
    EXPECT_TRUE(rejected.empty());
    return done;
  };
  // The first visit only starts the interval: the stack was just filled.
  EXPECT_EQ(th.idleFreed(cls), 0u);
  // Untouched since: 45 of the 60 go back, the oldest first.
  uint32_t idle = th.idleFreed(cls);
  EXPECT_EQ(idle, 45u);
  EXPECT_EQ(flushed(idle), 45u);
  EXPECT_EQ(th.freedCount(cls), 15u);
  EXPECT_EQ(th.alloc(cls), objs[59]) << "the newest object left the stack";
  // malloc went one below the 15 left: the mark is 14, so 11 go back.
  ASSERT_TRUE(th.pushFreed(cls, objs[59]));
  idle = th.idleFreed(cls);
  EXPECT_EQ(idle, 11u);
  EXPECT_EQ(flushed(idle), 11u);
  EXPECT_EQ(th.freedCount(cls), 4u);
  // A class in use keeps what it uses: drained to empty between visits, nothing goes back.
  std::vector<void*> taken;
  for (int i = 0; i < 4; ++i) taken.push_back(th.alloc(cls));
  EXPECT_EQ(th.freedCount(cls), 0u);
  for (void* p : taken) ASSERT_TRUE(th.pushFreed(cls, p));
  EXPECT_EQ(th.idleFreed(cls), 0u);
}

// A full stack grows when malloc emptied it since the last flush, shrinks (keeping half) when
// the class is only being freed, and otherwise keeps its capacity.
TEST_F(FreshHeap, FullStackGrowsWhenUsedAndShrinksWhenOnlyFreed) {
  ThreadHeap th(heap.get(), 22);
  const int cls = 2;  // 48 bytes: between 64 and 2048 objects
  std::vector<void*> objs;
  for (int i = 0; i < 500; ++i) objs.push_back(th.alloc(cls));
  auto flush = [&](uint32_t n) { th.flushFreed(cls, n, [](void*) { FAIL() << "rejected"; }); };
  size_t next = 0;
  auto pushUntilFull = [&] {
    while (th.pushFreed(cls, objs[next])) ++next;
  };
  auto allocAndFreeAgain = [&](int n) {
    std::vector<void*> taken;
    for (int i = 0; i < n; ++i) taken.push_back(th.alloc(cls));
    for (void* p : taken) ASSERT_TRUE(th.pushFreed(cls, p));
  };
  // Fills the stack, checks what its overflow asks for and the capacity after it, then flushes
  // that many.
  auto overflow = [&](uint32_t wantFlushed, uint32_t wantCapacity) {
    pushUntilFull();
    uint32_t n = th.overflowFlushCount(cls);
    EXPECT_EQ(n, wantFlushed);
    EXPECT_EQ(th.freedCapacity(cls), wantCapacity);
    flush(n);
  };
  pushUntilFull();
  EXPECT_EQ(th.freedCount(cls), 64u);
  // Only frees so far: the capacity stays at its floor and half of it is kept.
  overflow(32, 64);
  // malloc empties the stack, the program frees again: the stack was a cache, too small.
  allocAndFreeAgain(32);
  overflow(0, 128);
  EXPECT_EQ(th.freedCount(cls), 64u);
  // Frees only since it grew, but in the run of frees that made it grow (a batch of frees longer
  // than the stack, which malloc will take back): the capacity stays for the rest of the run,
  // half of it is kept.
  overflow(64, 128);
  overflow(64, 128);
  // Frees and allocations interleaved (the stack was not emptied): the run has ended, the
  // capacity stays.
  allocAndFreeAgain(10);
  overflow(64, 128);
  // Then frees only, outside a run that grew the stack (a structure torn down): back to 64, of
  // which 32 are kept.
  overflow(96, 64);
  EXPECT_EQ(th.freedCount(cls), 32u);
  // Interleaved again: the capacity stays.
  allocAndFreeAgain(10);
  overflow(32, 64);
}
TEST_F(FreshHeap, BatchesOfFreesThatMallocTakesBackGrowTheStackToTheirLength) {
  // glibc's malloc-simple pattern: 1600 mallocs of one size, then their 1600 frees, again and
  // again. The stack doubles once per batch until a whole batch fits, and then neither the frees
  // nor the mallocs leave the thread cache.
  ThreadHeap th(heap.get(), 23);
  const int cls = 0;  // 16 bytes: up to kMaxFreedPerClass objects
  ASSERT_GE(ThreadHeap::freedCapacityMax(cls), 1600u);
  std::vector<void*> batch(1600);
  uint32_t flushesInLastRound = 0;
  for (int round = 0; round < 10; ++round) {
    flushesInLastRound = 0;
    for (void*& p : batch) p = th.alloc(cls);
    for (void* p : batch) {
      if (th.pushFreed(cls, p)) continue;
      uint32_t n = th.overflowFlushCount(cls);
      if (n > 0) {
        th.flushFreed(cls, n, [](void*) { FAIL() << "rejected"; });
        ++flushesInLastRound;
      }
      ASSERT_TRUE(th.pushFreed(cls, p));
    }
  }
  EXPECT_GE(th.freedCapacity(cls), 1600u);
  EXPECT_EQ(flushesInLastRound, 0u);
  EXPECT_EQ(th.freedCount(cls), 1600u);
}
}  // namespace
}  // namespace mesh
