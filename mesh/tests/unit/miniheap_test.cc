#include "miniheap/miniheap.h"
#include "miniheap/page_entry.h"
#include "platform/cpu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <random>
#include <thread>
#include <vector>

namespace mesh {
namespace {

alignas(4096) char g_span[16 * 4096];

TEST(MiniHeap, SlotForOffsetAcceptsOnlySlotStarts) {
  for (int cls : {0, 2, 5, 13, 27, 35}) {
    MiniHeap mh(cls, 0, g_span);
    uint32_t size = mh.objectSize(), slot;
    for (uint32_t i = 0; i < mh.objectCount(); ++i) {
      ASSERT_TRUE(mh.slotForOffset(size_t{i} * size, &slot));
      ASSERT_EQ(slot, i);
      ASSERT_FALSE(mh.slotForOffset(size_t{i} * size + 8, &slot));
    }
    // The tail past the last object is not a slot.
    EXPECT_FALSE(mh.slotForOffset(size_t{mh.objectCount()} * size, &slot));
  }
}

// The free fast path relies on this to send large objects to the slow path.
TEST(MiniHeap, LargeObjectHasNoSlots) {
  MiniHeap mh(size_t{0}, size_t{4}, g_span, false);
  uint32_t slot;
  size_t start;
  for (size_t off : {size_t{0}, size_t{16}, size_t{4096}}) {
    EXPECT_FALSE(mh.slotForOffset(off, &slot)) << off;
    EXPECT_FALSE(mh.slotStartForOffset(off, &start)) << off;
  }
}

// The free fast path checks no bound of its own: for every slot-start offset inside a span of
// every class, with all slots live, only real slots pass isLiveUnfreed (the tail offset gives
// slot == objects, whose bit is never set), and interior offsets are not slot starts.
TEST(MiniHeap, FastPathSlotNeedsNoBound) {
  for (int cls = 0; cls < kNumClasses; ++cls) {
    MiniHeap mh(cls, 0, g_span);
    for (uint32_t i = 0; i < mh.objectCount(); ++i) mh.setLive(i);
    size_t passed = 0;
    for (size_t off = 0; off < mh.pages() * kSpanPageBytes; off += 16) {
      size_t slot;
      bool start = mh.slotStartForOffset(off, &slot);
      ASSERT_EQ(start, off % mh.objectSize() == 0) << "class " << cls << " offset " << off;
      if (!start) continue;
      ASSERT_LE(slot, mh.objectCount());
      ASSERT_LT(slot, kMaxObjectsPerSpan);
      ASSERT_EQ(mh.isLive(slot), mh.isLiveUnfreed(slot));  // no remote frees here
      if (mh.isLive(slot)) {
        ASSERT_LT(slot, mh.objectCount()) << "class " << cls;
        ++passed;
      }
    }
    EXPECT_EQ(passed, mh.objectCount()) << "class " << cls;
    EXPECT_EQ(mh.classLineOffset(), static_cast<size_t>(cls) * kClassLineBytes);
  }
}

// A slot number out of range (a racing free reading a recycled miniheap) reads a bit of the
// same bitmap, never memory past it.
TEST(MiniHeap, OutOfRangeSlotStaysInBitmap) {
  MiniHeap mh(0, 0, g_span);
  mh.setLive(3);
  EXPECT_TRUE(mh.isLiveUnfreed(3));
  EXPECT_TRUE(mh.isLiveUnfreed(256 + 3));   // word 4 wraps to word 0, bit 3
  EXPECT_TRUE(mh.isLiveUnfreed(1024 + 3));  // word 16 wraps to word 0
  EXPECT_TRUE(mh.isLive(256 + 3));
  EXPECT_FALSE(mh.isLive(4032 + 3));
  EXPECT_FALSE(mh.isLiveUnfreed(256 + 4));
  EXPECT_FALSE(mh.isLiveUnfreed(4032 + 3));  // word 63 wraps to word 3
}

// Page map entries carry the miniheap and the page's offset in its span; the tombstone and the
// empty entry decode to no miniheap (the free fast path's only test before using it).
TEST(PageEntry, RoundTrip) {
  MiniHeap mh(35, 0, g_span);
  for (size_t k = 0; k < kMaxSpanPages; ++k) {
    uintptr_t e = encodeEntry(&mh, k);
    EXPECT_EQ(entryMiniHeap(e), &mh);
    EXPECT_EQ(entryPageInSpan(e), k);
    EXPECT_EQ(entryOffsetInSpan(e), k * kSpanPageBytes);
  }
  EXPECT_EQ(entryMiniHeap(kTombstoneEntry), nullptr);
  EXPECT_EQ(entryMiniHeap(0), nullptr);
}

TEST(MiniHeap, LiveBitsCount) {
  MiniHeap mh(0, 0, g_span);  // 16-byte class: 256 objects
  EXPECT_EQ(mh.objectCount(), 256u);
  EXPECT_TRUE(mh.isEmpty());
  for (uint32_t i = 0; i < 256; i += 3) mh.setLive(i);
  EXPECT_EQ(mh.liveCount(), 86u);
  mh.clearLive(0);
  EXPECT_FALSE(mh.isLive(0));
  EXPECT_TRUE(mh.isLive(3));
  EXPECT_EQ(mh.liveCount(), 85u);
}

// liveCount counts with popcnt where the CPU has it and in registers where not: both must
// agree with std::popcount on every kind of word.
TEST(BitCount, BothWaysOfCountingAgreeWithPopcount) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> words = {0, ~0ull, 1, 1ull << 63, 0x5555555555555555ull, 0xaaaaaaaaaaaaaaaaull};
  for (int i = 0; i < 2000; ++i) words.push_back(rng() & rng());  // sparse and dense
  for (size_t i = 0; i + 4 <= words.size(); ++i) {
    std::atomic<uint64_t> w[4];
    uint32_t want = 0;
    for (int k = 0; k < 4; ++k) {
      w[k].store(words[i + k]);
      want += static_cast<uint32_t>(std::popcount(words[i + k]));
      ASSERT_EQ(cpu::countBitsSoft(words[i + k]), static_cast<uint32_t>(std::popcount(words[i + k])))
          << std::hex << words[i + k];
    }
    ASSERT_EQ(cpu::countBits4(w), want) << "words from " << i;
    ASSERT_EQ(cpu::countBits4(words.data() + i), want) << "plain words from " << i;  // a bitmap's copy
  }
}

TEST(MiniHeap, RemoteFreesFoldIntoLiveBits) {
  MiniHeap mh(0, 0, g_span);
  for (uint32_t i = 0; i < 256; ++i) mh.setLive(i);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&mh, t] {
      for (uint32_t i = t; i < 256; i += 4) {
        if (i % 2 == 0) mh.freeRemote(i, g_span + i * 16);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(mh.hasRemote());
  std::vector<uint32_t> freed;
  EXPECT_EQ(mh.foldRemote([&](uint32_t s) { freed.push_back(s); }), 128u);
  EXPECT_EQ(freed.size(), 128u);
  for (uint32_t s : freed) EXPECT_EQ(s % 2, 0u);
  EXPECT_EQ(mh.liveCount(), 128u);
  EXPECT_FALSE(mh.hasRemote());
}

TEST(MiniHeapDeathTest, RemoteDoubleFreeAborts) {
  MiniHeap mh(3, 0, g_span);
  mh.setLive(5);
  mh.freeRemote(5, g_span + 5 * 64);
  EXPECT_DEATH(mh.freeRemote(5, g_span + 5 * 64), "mesh: double free of 0x[0-9a-f]+");
}

TEST(MiniHeapDeathTest, RemoteFreeOfAFreeSlotAborts) {
  MiniHeap mh(3, 0, g_span);
  EXPECT_DEATH(mh.freeRemote(7, g_span + 7 * 64), "double free of");
}

TEST(MiniHeap, LargeObjectsHaveOneLiveSlot) {
  MiniHeap mh(0, 10, g_span, true);
  EXPECT_TRUE(mh.isLarge());
  EXPECT_EQ(mh.pages(), 10u);
  EXPECT_TRUE(mh.zeroed());
  EXPECT_EQ(mh.liveCount(), 1u);
}

}  // namespace
}  // namespace mesh
