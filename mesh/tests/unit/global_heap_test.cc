#include "global/global_heap.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "test_heap_fixture.h"
#include "thread/thread_heap.h"

namespace mesh {
namespace {

using test::FreshHeap;

int kOwnerTag;  // any address works as an owner identity in these tests

TEST_F(FreshHeap, AttachGivesAFreshSpanAndRegistersItsPages) {
  MiniHeap* mh = heap->attach(3, &kOwnerTag);
  ASSERT_NE(mh, nullptr);
  EXPECT_EQ(mh->owner(), &kOwnerTag);
  EXPECT_EQ(mh->sizeClassIndex(), 3);
  EXPECT_TRUE(mh->isEmpty());
  for (size_t i = 0; i < mh->pages(); ++i) {
    uintptr_t e = heap->arena().mapEntry(mh->spanPage() + i);
    EXPECT_EQ(entryMiniHeap(e), mh);
    EXPECT_EQ(entryPageInSpan(e), i);
  }
  char* last = mh->slotAddress(mh->objectCount() - 1);
  EXPECT_EQ(heap->spanStartFor(last, heap->entryFor(last)), mh->spanStart());
}

TEST_F(FreshHeap, DetachedEmptySpanIsReleasedAndTombstoned) {
  MiniHeap* mh = heap->attach(0, &kOwnerTag);
  size_t page = mh->spanPage();
  heap->detach(mh);
  EXPECT_EQ(heap->arena().mapEntry(page), kTombstoneEntry);
  EXPECT_EQ(heap->stats().mhFreeCount, 1u);
}

TEST_F(FreshHeap, PartialSpansAreReattachedFullestFirst) {
  MiniHeap* a = heap->attach(0, &kOwnerTag);
  MiniHeap* b = heap->attach(0, &kOwnerTag);
  ASSERT_NE(a, b);
  a->setLive(1);
  heap->detach(a);  // 1/256 live
  for (uint32_t i = 0; i < 200; ++i) b->setLive(i);
  heap->detach(b);  // 200/256 live
  MiniHeap* again = heap->attach(0, &kOwnerTag);
  EXPECT_EQ(again, b);
  heap->detach(again);
}

// Lanes (SpanLists::kLanes, GlobalHeap::chooseListedLocked): a partial span goes back to the
// lane of the thread that last had it, and a thread takes its own lane's spans first.
TEST_F(FreshHeap, ThreadsJoinTheLeastUsedLane) {
  int a = heap->joinLane(), b = heap->joinLane();
  EXPECT_NE(a, b);
  EXPECT_EQ(heap->liveThreadHeaps(), 2u);
  heap->leaveLane(a);
  EXPECT_EQ(heap->joinLane(), a) << "a lane left empty is taken again first";
  heap->leaveLane(a);
  heap->leaveLane(b);
  EXPECT_EQ(heap->liveThreadHeaps(), 0u);
}

TEST_F(FreshHeap, AThreadReattachesItsOwnLanesSpanBeforeAFullerOneOfAnotherLane) {
  int laneA = heap->joinLane(), laneB = heap->joinLane();
  int ownerA, ownerB;
  MiniHeap* a = heap->attach(0, &ownerA, laneA);
  MiniHeap* b = heap->attach(0, &ownerB, laneB);
  for (uint32_t i = 0; i < 10; ++i) a->setLive(i);
  for (uint32_t i = 0; i < 200; ++i) b->setLive(i);
  heap->detach(a);  // 10/256 live, lane A
  heap->detach(b);  // 200/256 live, lane B
  MiniHeap* again = heap->attach(0, &ownerA, laneA);
  EXPECT_EQ(again, a) << "A took the fuller span of B's lane instead of its own";
  heap->detach(again);
  again = heap->attach(0, &ownerB, laneB);
  EXPECT_EQ(again, b);
  heap->detach(again);
  heap->leaveLane(laneA);
  heap->leaveLane(laneB);
}

TEST_F(FreshHeap, WithItsOwnLaneEmptyAThreadReusesAnotherLanesSpanNotANewOne) {
  int laneA = heap->joinLane(), laneB = heap->joinLane();
  int ownerA, ownerB;
  MiniHeap* low = heap->attach(0, &ownerA, laneA);
  MiniHeap* high = heap->attach(0, &ownerA, laneA);
  low->setLive(0);
  for (uint32_t i = 0; i < 200; ++i) high->setLive(i);
  heap->detach(low);
  heap->detach(high);
  uint64_t spans = heap->stats().mhLive;
  MiniHeap* taken = heap->attach(0, &ownerB, laneB);
  EXPECT_EQ(taken, high) << "lanes must not strand memory: the fullest listed span comes first";
  EXPECT_EQ(heap->stats().mhLive, spans) << "a new span was made while partial ones were listed";
  heap->detach(taken);
  heap->leaveLane(laneA);
  heap->leaveLane(laneB);
}

TEST_F(FreshHeap, RemoteFreesOnDetachedSpansAreDrainedAndSpansReleased) {
  MiniHeap* mh = heap->attach(1, &kOwnerTag);
  for (uint32_t i = 0; i < mh->objectCount(); ++i) mh->setLive(i);
  heap->detach(mh);  // full: in no list
  std::thread other([&] {
    for (uint32_t i = 0; i < mh->objectCount(); ++i) heap->freeNonOwner(mh->slotAddress(i), heap->entryFor(mh->slotAddress(i)), i);
  });
  other.join();
  heap->releaseFreeMemory();
  EXPECT_EQ(heap->stats().mhLive, 0u);
  EXPECT_EQ(heap->arena().stats().inUseBytes, 0u);
}

TEST_F(FreshHeap, RemoteFreesToAnAttachedSpanWaitForTheOwner) {
  MiniHeap* mh = heap->attach(1, &kOwnerTag);
  for (uint32_t i = 0; i < 10; ++i) mh->setLive(i);
  for (uint32_t i = 0; i < 10; ++i) heap->freeNonOwner(mh->slotAddress(i), heap->entryFor(mh->slotAddress(i)), i);
  EXPECT_EQ(mh->liveCount(), 10u) << "only the owner folds remote frees while attached";
  EXPECT_EQ(mh->foldRemote(), 10u);
  EXPECT_TRUE(mh->isEmpty());
  heap->detach(mh);
}

// The pacing's input: free slots of listed spans at an occupancy meshing accepts (<= 80%),
// kept as spans are relisted, without a scan.
TEST_F(FreshHeap, MeshableFreeCountsTheFreeSlotsOfListedSpansMeshingWouldTake) {
  constexpr int kCls = 3;  // 64 B, 64 slots per span
  MiniHeap* low = heap->attach(kCls, &kOwnerTag);
  MiniHeap* high = heap->attach(kCls, &kOwnerTag);
  for (uint32_t i = 0; i < 8; ++i) low->setLive(i);
  for (uint32_t i = 0; i < 60; ++i) high->setLive(i);  // 94%: meshing skips it
  EXPECT_EQ(heap->classStats(kCls).meshableFree, 0u) << "attached spans are not counted";
  heap->detach(low);
  heap->detach(high);
  EXPECT_EQ(heap->classStats(kCls).meshableFree, 56u);
  EXPECT_EQ(heap->mesher().meshableFreeBytes(), 56u * 64);
  // Frees in the span (remote, folded by the drain) grow the count; the fuller span crosses 80%.
  for (uint32_t i = 0; i < 4; ++i) heap->freeNonOwner(low->slotAddress(i), heap->entryFor(low->slotAddress(i)), i);
  for (uint32_t i = 0; i < 20; ++i) heap->freeNonOwner(high->slotAddress(i), heap->entryFor(high->slotAddress(i)), i);
  heap->drainAll();
  EXPECT_EQ(heap->classStats(kCls).meshableFree, 60u + 24u);
  ClassStats cs = heap->classStats(kCls);
  EXPECT_EQ(cs.meshableFree, cs.capacity - cs.liveObjects);
  // Attached again: no longer counted.
  MiniHeap* again = heap->attach(kCls, &kOwnerTag);
  EXPECT_EQ(heap->classStats(kCls).meshableFree, again == low ? 24u : 60u);
  heap->detach(again);
  EXPECT_EQ(heap->classStats(kCls).meshableFree, 84u);
  // Emptied spans leave the count.
  for (MiniHeap* mh : {low, high}) {
    for (uint32_t i = 0; i < mh->objectCount(); ++i) {
      if (mh->isLive(i)) heap->freeNonOwner(mh->slotAddress(i), heap->entryFor(mh->slotAddress(i)), i);
    }
  }
  heap->drainAll();
  EXPECT_EQ(heap->classStats(kCls).meshableFree, 0u);
  EXPECT_EQ(heap->stats().mhLive, 0u);
}

TEST_F(FreshHeap, DecayReturnsFreePagesOnlyAfterTheirTime) {
  bool zeroed;
  void* p = heap->allocLarge(size_t{64} << 10, 1, &zeroed);
  std::memset(p, 1, size_t{64} << 10);
  heap->freeLarge(entryMiniHeap(heap->entryFor(p)), p);
  ASSERT_EQ(heap->arena().stats().dirtyBytes, size_t{64} << 10);
  constexpr uint64_t kDecayNs = uint64_t{400} * 1000 * 1000;
  EXPECT_EQ(heap->maybeDecay(kDecayNs), 0u) << "the first pass only marks";
  EXPECT_EQ(heap->maybeDecay(kDecayNs), 0u) << "the next pass is half a decay period later";
  EXPECT_EQ(heap->maybeDecay(0), 0u) << "0 turns decay off";
  uint64_t start = os::monotonicNs();
  size_t released = 0;
  while (released == 0 && os::monotonicNs() - start < uint64_t{10} * 1000 * 1000 * 1000) {
    released = heap->maybeDecay(kDecayNs);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(released, size_t{64} << 10);
  EXPECT_GE(os::monotonicNs() - start, kDecayNs / 2 - kDecayNs / 20);
  EXPECT_EQ(heap->arena().stats().dirtyBytes, 0u);
  EXPECT_EQ(heap->stats().decayedBytes, size_t{64} << 10);
}

TEST_F(FreshHeap, UnattachedAllocationsAreDistinct) {
  std::set<void*> seen;
  for (int i = 0; i < 1000; ++i) {
    void* p = heap->allocUnattached(4);
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(seen.insert(p).second);
    std::memset(p, 0x5a, 80);
  }
}

TEST_F(FreshHeap, LargeObjectsRoundTrip) {
  bool zeroed = false;
  void* p = heap->allocLarge(100000, 1, &zeroed);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(zeroed);
  MiniHeap* mh = entryMiniHeap(heap->entryFor(p));
  ASSERT_NE(mh, nullptr);
  EXPECT_TRUE(mh->isLarge());
  EXPECT_EQ(mh->pages(), 25u);
  std::memset(p, 1, 100000);
  heap->shrinkLarge(mh, 10);
  EXPECT_EQ(mh->pages(), 10u);
  heap->freeLarge(mh, p);
  EXPECT_EQ(heap->entryFor(p), kTombstoneEntry);
  EXPECT_EQ(heap->stats().largeBytes, 0u);
  void* aligned = heap->allocLarge(5000, 16, &zeroed);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned) % (16 * 4096), 0u);
}

TEST_F(FreshHeap, ArenaExhaustionGivesNullNotACrash) {
  bool zeroed;
  EXPECT_EQ(heap->allocLarge(size_t{1} << 40, 1, &zeroed), nullptr);
  std::vector<void*> blocks;
  void* p;
  while ((p = heap->allocLarge(size_t{1} << 20, 1, &zeroed)) != nullptr) blocks.push_back(p);
  EXPECT_GE(blocks.size(), 60u);
  EXPECT_EQ(heap->attach(0, &kOwnerTag), nullptr);  // no page left for a span either
  heap->freeLarge(entryMiniHeap(heap->entryFor(blocks.back())), blocks.back());
  MiniHeap* mh = heap->attach(0, &kOwnerTag);
  EXPECT_NE(mh, nullptr) << "memory is usable again after a free";
}

TEST_F(FreshHeap, AnonymousFallbackWorks) {
  GlobalHeap anon;
  ASSERT_TRUE(anon.init(test::smallHeapConfig(false)));
  EXPECT_FALSE(anon.arena().memfdBacked());
  MiniHeap* mh = anon.attach(2, &kOwnerTag);
  ASSERT_NE(mh, nullptr);
  anon.detach(mh);
}


// Sparse spans (MiniHeap::sparse; docs/behaviour.md G33): a detached span under the sparse share
// of live slots is marked when it is listed, once its class has sparseMinFreeBytes free in its
// partial spans; a thread that attaches it clears the mark; a thread cache's fast free refuses
// its objects (the slow path frees them to the span).
class SparseSpans : public ::testing::Test {
 protected:
  void SetUp() override {
    HeapConfig config = test::smallHeapConfig();
    config.sparseMinFreeBytes = 64 << 10;  // 16 nearly empty spans of class 0 (4 KiB each)
    heap = std::make_unique<GlobalHeap>();
    ASSERT_TRUE(heap->init(config));
  }
  // New detached spans of class cls, one per entry of `live`, with that many objects (slots
  // 0..live-1): all are attached before any is detached, or attach would hand back the last.
  std::vector<MiniHeap*> Detached(int cls, std::vector<uint32_t> live) {
    std::vector<MiniHeap*> spans;
    for (size_t i = 0; i < live.size(); ++i) spans.push_back(heap->attach(cls, &kOwnerTag));
    for (size_t k = 0; k < live.size(); ++k) {
      for (uint32_t i = 0; i < live[k]; ++i) spans[k]->setLive(i);
      heap->detach(spans[k]);
    }
    return spans;
  }
  // Frees slot of mh (detached) through a batch, which relists mh.
  void FreeSlot(MiniHeap* mh, uint32_t slot) {
    void* p = mh->slotAddress(slot);
    ASSERT_EQ(heap->freeBatch(mh->sizeClassIndex(), &p, 1), 0u);
  }
  std::unique_ptr<GlobalHeap> heap;
};

TEST_F(SparseSpans, G33_ASparseSpanIsMarkedWhenListedAndClearedWhenAttached) {
  std::vector<uint32_t> live(24, 20);  // 20 of 256 live: 8%
  live.push_back(128);
  std::vector<MiniHeap*> sparse = Detached(0, live);
  MiniHeap* half = sparse.back();
  sparse.pop_back();
  // Relisted now that the class has 24 spans' worth of free slots.
  for (MiniHeap* mh : sparse) FreeSlot(mh, 19);
  FreeSlot(half, 127);
  for (MiniHeap* mh : sparse) {
    EXPECT_TRUE(mh->sparse());
    EXPECT_EQ(mh->classLineOffset(), MiniHeap::kSparseLine);
  }
  EXPECT_FALSE(half->sparse()) << "a half-full span is not sparse";
  EXPECT_EQ(half->classLineOffset(), 0u) << "class 0's own line";
  // The fullest span is attached first; a sparse one, attached, is sparse no more.
  EXPECT_EQ(heap->attach(0, &kOwnerTag), half);
  MiniHeap* again = heap->attach(0, &kOwnerTag);
  EXPECT_FALSE(again->sparse());
  EXPECT_EQ(again->classLineOffset(), 0u);
  heap->detach(half);
  heap->detach(again);
  // With the share at 0, a relisted span is not sparse.
  heap->setSparsePct(0);
  FreeSlot(sparse[5], 18);
  EXPECT_FALSE(sparse[5]->sparse());
}

TEST_F(SparseSpans, G33_NoSpanIsSparseInAClassWithLittleFreeMemory) {
  // Class 0 with 8 nearly empty spans: 8 * 4 KiB free, under the 64 KiB the heap asks for.
  std::vector<MiniHeap*> spans = Detached(0, std::vector<uint32_t>(8, 10));
  for (MiniHeap* mh : spans) FreeSlot(mh, 9);
  for (MiniHeap* mh : spans) EXPECT_FALSE(mh->sparse());
}

TEST_F(SparseSpans, G33_AThreadCacheRefusesASparseSpansObjectsOnItsFastPath) {
  std::vector<MiniHeap*> sparse = Detached(0, std::vector<uint32_t>(24, 20));
  for (MiniHeap* mh : sparse) FreeSlot(mh, 19);
  ASSERT_TRUE(sparse[0]->sparse());
  ThreadHeap th(heap.get(), 11);
  EXPECT_FALSE(th.tryPushFreed(sparse[0], 3, sparse[0]->slotAddress(3)));
  EXPECT_EQ(th.freedCount(0), 0u);
  // The same object of a span that is not sparse goes on the stack.
  heap->setSparsePct(0);
  FreeSlot(sparse[0], 18);
  ASSERT_FALSE(sparse[0]->sparse());
  EXPECT_TRUE(th.tryPushFreed(sparse[0], 3, sparse[0]->slotAddress(3)));
  EXPECT_EQ(th.freedCount(0), 1u);
  th.flushFreed(0, 1, [](void*) { FAIL() << "the batch rejected a live object"; });
  th.detachAll();
}

}  // namespace
}  // namespace mesh
