#include "global/global_heap.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "test_heap_fixture.h"

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

}  // namespace
}  // namespace mesh
