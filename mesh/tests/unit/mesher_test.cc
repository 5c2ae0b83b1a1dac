// Meshing on fresh heap instances: the candidate search as a pure function, and the mesh
// operation (contents, aliasing, frees on meshed pages, release, mapping budget).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "miniheap/mesh_candidates.h"
#include "test_heap_fixture.h"
#include "thread/thread_heap.h"

namespace mesh {
namespace {

using test::FreshHeap;

// --- candidate search ------------------------------------------------------------------------

size_t pairsOf(const std::vector<SpanBits>& bits, uint32_t probes, std::vector<MeshPair>* out,
               uint64_t seed = 1) {
  uint32_t n = static_cast<uint32_t>(bits.size());
  std::vector<uint32_t> order(n);
  std::unique_ptr<bool[]> used(new bool[n]);
  out->resize(n / 2 + 1);
  Rng rng(seed);
  size_t k = findMeshPairs(bits.data(), n, rng, probes, order.data(), used.get(), out->data(), out->size());
  out->resize(k);
  return k;
}

TEST(MeshCandidates, PairsAreDisjointAndUseEachSpanOnce) {
  Rng rng(7);
  std::vector<SpanBits> bits(500);
  for (auto& b : bits) {
    for (auto& w : b.w) w = rng.next() & rng.next() & rng.next();  // ~1/8 occupancy
  }
  std::vector<MeshPair> pairs;
  size_t k = pairsOf(bits, 64, &pairs);
  EXPECT_GT(k, 100u);
  std::set<uint32_t> seen;
  for (const MeshPair& p : pairs) {
    EXPECT_TRUE(bitsDisjoint(bits[p.a], bits[p.b]));
    EXPECT_TRUE(seen.insert(p.a).second);
    EXPECT_TRUE(seen.insert(p.b).second);
  }
}

TEST(MeshCandidates, FullSpansNeverPair) {
  std::vector<SpanBits> bits(10);
  for (auto& b : bits) std::memset(b.w, 0xff, sizeof b.w);
  std::vector<MeshPair> pairs;
  EXPECT_EQ(pairsOf(bits, 64, &pairs), 0u);
}

TEST(MeshCandidates, ComplementaryHalvesMeshCompletelyWithEnoughProbes) {
  std::vector<SpanBits> bits(64);
  for (size_t i = 0; i < bits.size(); ++i) {
    uint64_t w = (i % 2 == 0) ? 0x5555555555555555ull : 0xaaaaaaaaaaaaaaaaull;
    for (auto& x : bits[i].w) x = w;
  }
  std::vector<MeshPair> pairs;
  EXPECT_EQ(pairsOf(bits, 64, &pairs), 32u);
}

TEST(MeshCandidates, TooFewSpans) {
  std::vector<SpanBits> one(1);
  std::vector<MeshPair> pairs;
  EXPECT_EQ(pairsOf(one, 64, &pairs), 0u);
}

// --- the mesh operation ----------------------------------------------------------------------

// Frees every object the predicate selects; returns the survivors.
template <typename Keep>
std::vector<char*> keepOnly(GlobalHeap& heap, ThreadHeap& th, const std::vector<char*>& objs, Keep keep) {
  std::vector<char*> live;
  for (size_t i = 0; i < objs.size(); ++i) {
    if (keep(i, objs[i])) {
      live.push_back(objs[i]);
      continue;
    }
    uintptr_t e = heap.entryFor(objs[i]);
    th.freeOwned(entryMiniHeap(e), static_cast<size_t>(objs[i] - heap.spanStartFor(objs[i], e)), objs[i]);
  }
  return live;
}

class MeshOp : public FreshHeap {
 protected:
  static constexpr int kClass = 3;  // 64-byte objects, 64 per 4 KiB span
  // Fills `spans` spans of kClass, then keeps only objects whose slot index % 8 == i % 8 for
  // span i, so spans with different residues mesh.
  std::vector<char*> fragment(ThreadHeap& th, int spans) {
    return fragmentWith({&th}, spans, [](size_t, size_t slot, size_t spanPage) { return slot % 8 == spanPage % 8; });
  }
  // Each thread heap fills `spans` spans of its own (all allocate before anything is freed, so
  // no heap refills another's span); then only the objects for which keep(thread index, slot,
  // span page) holds stay.
  template <typename Keep>
  std::vector<char*> fragmentWith(std::initializer_list<ThreadHeap*> threads, int spans, Keep keep) {
    std::vector<std::pair<char*, size_t>> objs;
    size_t index = 0;
    for (ThreadHeap* th : threads) {
      for (int i = 0; i < spans * 64; ++i) {
        auto* p = static_cast<char*>(th->alloc(kClass));
        std::memset(p, static_cast<int>(reinterpret_cast<uintptr_t>(p) >> 6), 64);
        objs.emplace_back(p, index);
      }
      th->detachAll();
      ++index;
    }
    std::vector<char*> live;
    for (auto [p, thread] : objs) {
      uintptr_t e = heap->entryFor(p);
      MiniHeap* mh = entryMiniHeap(e);
      size_t slot = static_cast<size_t>(p - heap->spanStartFor(p, e)) / 64;
      size_t spanIndex = mh->spanPage();
      if (keep(thread, slot, spanIndex)) {
        live.push_back(p);
      } else {
        heap->freeNonOwner(p, e, static_cast<uint32_t>(slot));
      }
    }
    heap->releaseFreeMemory();
    return live;
  }
  static bool intact(const std::vector<char*>& live) {
    for (char* p : live) {
      for (int i = 0; i < 64; ++i) {
        if (p[i] != static_cast<char>(reinterpret_cast<uintptr_t>(p) >> 6)) return false;
      }
    }
    return true;
  }
};

TEST_F(MeshOp, MeshingKeepsContentsAndAliasesPages) {
  ThreadHeap th(heap.get(), 11);
  std::vector<char*> live = fragment(th, 16);
  size_t spansBefore = heap->stats().mhLive;
  size_t meshes = heap->meshAll();
  ASSERT_GT(meshes, 0u);
  EXPECT_EQ(heap->stats().meshCount, meshes);
  EXPECT_EQ(heap->stats().mhLive, spansBefore - meshes);
  EXPECT_TRUE(intact(live));
  // Every object's page now belongs to a miniheap whose own span or one of its aliases holds it,
  // and a write through one virtual alias shows through the other.
  size_t aliased = 0;
  for (char* p : live) {
    uintptr_t e = heap->entryFor(p);
    MiniHeap* mh = entryMiniHeap(e);
    char* start = heap->spanStartFor(p, e);
    if (start == mh->spanStart()) continue;
    ++aliased;
    char* twin = mh->spanStart() + (p - start);
    p[1] = 0x7e;
    EXPECT_EQ(twin[1], 0x7e) << "virtual alias does not share the physical page";
    p[1] = static_cast<char>(reinterpret_cast<uintptr_t>(p) >> 6);
  }
  EXPECT_GT(aliased, 0u);
}

TEST_F(MeshOp, FreesThroughMeshedPagesActOnTheRightSlotAndEmptySpansAreRecycled) {
  ThreadHeap th(heap.get(), 12);
  std::vector<char*> live = fragment(th, 16);
  ASSERT_GT(heap->meshAll(), 0u);
  for (char* p : live) {
    uintptr_t e = heap->entryFor(p);
    MiniHeap* mh = entryMiniHeap(e);
    uint32_t slot;
    ASSERT_TRUE(mh->slotForOffset(static_cast<size_t>(p - heap->spanStartFor(p, e)), &slot));
    ASSERT_TRUE(heap->isLiveSmall(p, e, slot));
    heap->freeNonOwner(p, e, slot);
  }
  heap->releaseFreeMemory();
  HeapStats s = heap->stats();
  EXPECT_EQ(s.mhLive, 0u);
  EXPECT_EQ(s.meshedPages, 0u) << "aliases must be undone when a meshed span empties";
  EXPECT_EQ(s.arena.inUseBytes, 0u);
  // Recycled virtual spans map their own (zeroed) pages again.
  ThreadHeap again(heap.get(), 13);
  for (int i = 0; i < 16 * 64; ++i) {
    auto* p = static_cast<char*>(again.alloc(kClass));
    for (int j = 0; j < 64; ++j) ASSERT_EQ(p[j], 0) << "reused page still aliased";
    std::memset(p, 0x11, 64);
  }
  again.detachAll();
}

TEST_F(MeshOp, MeshedSpansMeshAgainIntoLongerChains) {
  // 16 spans at 1/8 occupancy with 8 different slot residues: pairs alone would leave 8
  // physical spans; meshing meshed spans into each other gets down to chains of
  // 1 + kMaxExtraSpans virtual spans.
  ThreadHeap th(heap.get(), 16);
  std::vector<char*> live = fragment(th, 16);
  size_t before = heap->stats().mhLive;
  ASSERT_EQ(before, 16u);
  heap->meshAll();
  size_t after = heap->stats().mhLive;
  EXPECT_LE(after, 5u) << "meshed spans did not mesh again";
  EXPECT_TRUE(intact(live));
  std::set<MiniHeap*> physical;
  uint32_t longest = 0;
  for (char* p : live) {
    MiniHeap* mh = entryMiniHeap(heap->entryFor(p));
    physical.insert(mh);
    longest = std::max(longest, mh->extraSpanCount());
  }
  EXPECT_EQ(physical.size(), after);
  EXPECT_GE(longest, 3u);
  EXPECT_LE(longest, kMaxExtraSpans);
  // Every object still frees through its own virtual address, and the chains come apart.
  for (char* p : live) {
    uintptr_t e = heap->entryFor(p);
    uint32_t slot;
    ASSERT_TRUE(entryMiniHeap(e)->slotForOffset(static_cast<size_t>(p - heap->spanStartFor(p, e)), &slot));
    heap->freeNonOwner(p, e, slot);
  }
  heap->releaseFreeMemory();
  EXPECT_EQ(heap->stats().mhLive, 0u);
  EXPECT_EQ(heap->stats().meshedPages, 0u);
}

TEST_F(MeshOp, MappingBudgetStopsMeshingWithoutFailing) {
  ThreadHeap th(heap.get(), 14);
  std::vector<char*> live = fragment(th, 16);
  heap->setMaxMapCount(10);  // far below what the process already uses
  EXPECT_EQ(heap->meshAll(), 0u);
  EXPECT_TRUE(intact(live));
  heap->setMaxMapCount(0);  // back to vm.max_map_count
  EXPECT_GT(heap->meshAll(), 0u);
}

TEST_F(MeshOp, AttachedAndLargeClassesAreNeverMeshed) {
  ThreadHeap th(heap.get(), 15);
  for (int i = 0; i < 64; ++i) th.alloc(kClass);  // attached span: not a candidate
  EXPECT_EQ(heap->meshClass(kClass, 0), 0u);
  EXPECT_EQ(heap->meshClass(27, 0), 0u);  // 4 KiB class: never meshed
  th.detachAll();
}

TEST_F(MeshOp, BackgroundStepMeshesEverythingWithinItsBudget) {
  ThreadHeap th(heap.get(), 16);
  std::vector<char*> live = fragment(th, 16);
  EXPECT_EQ(heap->meshStep(0), 0u) << "no budget, no work";
  size_t meshes = heap->meshStep(uint64_t{10} * 1000 * 1000 * 1000);
  EXPECT_GT(meshes, 0u);
  EXPECT_EQ(heap->meshStep(uint64_t{10} * 1000 * 1000 * 1000), 0u) << "the first step left a pair";
  EXPECT_EQ(heap->stats().meshCount, meshes);
  EXPECT_TRUE(intact(live));
}

// MESH_SAME_THREAD_MESHING: two thread heaps whose spans only mesh across threads (thread 0
// keeps slots 0, 16, 32, 48 of every span, thread 1 slots 1, 17, 33, 49).
TEST_F(MeshOp, SameThreadMeshingNeverPairsSpansOfTwoThreads) {
  ThreadHeap th1(heap.get(), 17), th2(heap.get(), 18);
  std::vector<char*> live =
      fragmentWith({&th1, &th2}, 16, [](size_t thread, size_t slot, size_t) { return slot % 16 == thread; });
  heap->setSameThreadMeshing(true);
  EXPECT_EQ(heap->meshAll(), 0u);
  heap->setSameThreadMeshing(false);
  EXPECT_GT(heap->meshAll(), 0u) << "the default pairs spans of different threads";
  EXPECT_TRUE(intact(live));
}

TEST_F(MeshOp, SameThreadMeshingMeshesWithinEachThread) {
  ThreadHeap th1(heap.get(), 19), th2(heap.get(), 20);
  std::vector<char*> live =
      fragmentWith({&th1, &th2}, 16, [](size_t, size_t slot, size_t spanPage) { return slot % 8 == spanPage % 8; });
  std::map<char*, void*> allocatedBy;
  std::set<void*> owners;
  for (char* p : live) owners.insert(allocatedBy[p] = entryMiniHeap(heap->entryFor(p))->lastOwner());
  ASSERT_EQ(owners, (std::set<void*>{&th1, &th2}));
  heap->setSameThreadMeshing(true);
  ASSERT_GT(heap->meshAll(), 0u);
  // Every object now lives on a span last owned by the thread heap that allocated it.
  size_t aliased = 0;
  for (char* p : live) {
    uintptr_t e = heap->entryFor(p);
    MiniHeap* mh = entryMiniHeap(e);
    EXPECT_EQ(mh->lastOwner(), allocatedBy[p]) << "a mesh joined spans of two threads";
    aliased += heap->spanStartFor(p, e) != mh->spanStart();
  }
  EXPECT_GT(aliased, 0u);
  EXPECT_TRUE(intact(live));
}

TEST(MeshOpAnonymous, NoMeshingWithoutMemfd) {
  GlobalHeap heap;
  ASSERT_TRUE(heap.init(test::smallHeapConfig(false)));
  EXPECT_EQ(heap.meshAll(), 0u);
}

}  // namespace
}  // namespace mesh
