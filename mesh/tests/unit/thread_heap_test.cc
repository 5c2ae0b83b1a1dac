#include "thread/thread_heap.h"

#include <gtest/gtest.h>

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
  // The owner's attached span got its objects back through the remote bitmap.
  size_t spansBefore = heap->stats().mhLive;
  for (int i = 0; i < 5000; ++i) ASSERT_NE(owner.alloc(2), nullptr);
  EXPECT_LE(heap->stats().mhLive, spansBefore + 1) << "freed memory was not reused";
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

}  // namespace
}  // namespace mesh
