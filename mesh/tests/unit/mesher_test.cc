// Meshing on fresh heap instances: the mesh operation (contents, aliasing, frees on meshed pages,
// release, mapping budget, pacing, memfd backing, fork). The candidate search and the mapping
// count are in mesh_candidates_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "meshing/mesh_candidates.h"
#include "test_heap_fixture.h"
#include "thread/thread_heap.h"

namespace mesh {
namespace {

using test::FreshHeap;

// --- the mesh operation ----------------------------------------------------------------------

// Frees (as a remote free: the spans are detached) every object the predicate does not keep;
// returns the survivors.
template <typename Keep>
std::vector<char*> keepOnly(GlobalHeap& heap, const std::vector<char*>& objs, Keep keep) {
  std::vector<char*> live;
  for (size_t i = 0; i < objs.size(); ++i) {
    if (keep(i, objs[i])) {
      live.push_back(objs[i]);
      continue;
    }
    uintptr_t e = heap.entryFor(objs[i]);
    uint32_t slot;
    EXPECT_TRUE(entryMiniHeap(e)->slotForOffset(static_cast<size_t>(objs[i] - heap.spanStartFor(objs[i], e)), &slot));
    heap.freeNonOwner(objs[i], e, slot);
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

// G34: what a server leaves after deleting three quarters of its values at random - spans of 16
// objects, each object kept with probability 1/4 - is compacted until the spans are at least
// three quarters full (the fullest span takes the fullest that fits, again and again; the split
// mesher's random pairs stopped near 60%, mesh_candidates_test.cc). Contents are kept.
TEST_F(MeshOp, G34_CompactionFillsSpansOfSixteenObjectsThreeQuartersFull) {
  int cls = -1;
  for (int c = 0; c < kNumClasses && cls < 0; ++c) {
    if (sizeClass(c).objects == 16 && sizeClass(c).size < kMaxMeshedObjectSize) cls = c;
  }
  ASSERT_GE(cls, 0);
  ThreadHeap th(heap.get(), 21);
  std::vector<char*> objs;
  for (int i = 0; i < 1024 * 16; ++i) {
    auto* p = static_cast<char*>(th.alloc(cls));
    std::memset(p, static_cast<int>(reinterpret_cast<uintptr_t>(p) >> 6), 64);
    objs.push_back(p);
  }
  th.detachAll();
  Rng rng(34);
  std::vector<char*> live = keepOnly(*heap, objs, [&](size_t, char*) { return rng.below(4) == 0; });
  heap->releaseFreeMemory();
  size_t spans = heap->stats().mhLive;
  ASSERT_GE(spans, 1000u);
  ASSERT_GT(heap->meshAll(), 0u);
  std::set<MiniHeap*> physical;
  for (char* p : live) physical.insert(entryMiniHeap(heap->entryFor(p)));
  double occupancy = static_cast<double>(live.size()) / (static_cast<double>(physical.size()) * 16);
  EXPECT_GE(occupancy, 0.75) << live.size() << " objects on " << physical.size() << " spans (from " << spans << ")";
  EXPECT_TRUE(intact(live));
}

// A step's window takes spans from every occupancy bin: with more nearly empty spans than a step
// looks at (2,112 spans of one object), the eight spans at 62% are still among its candidates,
// and its one mesh puts the fullest of them together with a span that fits it (taking the
// emptiest spans alone, the step would have meshed two spans of one object).
TEST_F(MeshOp, G34_AStepsWindowReachesFullerSpansBeyondManyEmptyOnes) {
  int cls = -1;
  for (int c = 0; c < kNumClasses && cls < 0; ++c) {
    if (sizeClass(c).objects == 16 && sizeClass(c).size < kMaxMeshedObjectSize) cls = c;
  }
  ASSERT_GE(cls, 0);
  const size_t sparse = 2112, fuller = 8;
  ThreadHeap th(heap.get(), 22);
  std::vector<char*> objs;
  for (size_t i = 0; i < (sparse + fuller) * 16; ++i) {
    auto* p = static_cast<char*>(th.alloc(cls));
    std::memset(p, static_cast<int>(reinterpret_cast<uintptr_t>(p) >> 6), 64);
    objs.push_back(p);
  }
  th.detachAll();
  std::map<MiniHeap*, size_t> spanIndex;  // in the order the spans were filled
  std::vector<char*> fullerObjects;
  std::vector<char*> live = keepOnly(*heap, objs, [&](size_t, char* p) {
    uintptr_t e = heap->entryFor(p);
    MiniHeap* mh = entryMiniHeap(e);
    size_t index = spanIndex.emplace(mh, spanIndex.size()).first->second;
    size_t slot = static_cast<size_t>(p - heap->spanStartFor(p, e)) / sizeClass(cls).size;
    bool keep = index < sparse ? slot == index % 16 : slot < 10;
    if (keep && index >= sparse) fullerObjects.push_back(p);
    return keep;
  });
  ASSERT_EQ(spanIndex.size(), sparse + fuller);
  ASSERT_EQ(fullerObjects.size(), fuller * 10);
  ASSERT_EQ(heap->mesher().meshClass(cls, 1), 1u);
  bool fullerMeshed = false;
  for (char* p : fullerObjects) fullerMeshed |= entryMiniHeap(heap->entryFor(p))->extraSpanCount() == 1;
  EXPECT_TRUE(fullerMeshed) << "the step's one mesh left every fuller span alone";
  EXPECT_TRUE(intact(live));
}

TEST_F(MeshOp, MappingBudgetStopsMeshingWithoutFailing) {
  ThreadHeap th(heap.get(), 14);
  std::vector<char*> live = fragment(th, 16);
  heap->mesher().setMaxMapCount(10);  // far below what the process already uses
  EXPECT_EQ(heap->meshAll(), 0u);
  EXPECT_TRUE(intact(live));
  heap->mesher().setMaxMapCount(0);  // back to vm.max_map_count
  EXPECT_GT(heap->meshAll(), 0u);
}

TEST_F(MeshOp, StepTimesGiveAMaximumAndAP99) {
  EXPECT_EQ(heap->stats().meshPauseP99Ns, 0u) << "no step yet";
  ThreadHeap th(heap.get(), 17);
  std::vector<char*> live = fragment(th, 16);
  ASSERT_GT(heap->meshAll(), 0u);
  HeapStats s = heap->stats();
  EXPECT_GT(s.meshPauseP99Ns, 0u);
  EXPECT_LE(s.meshPauseP99Ns, s.meshPauseMaxNs);
  EXPECT_TRUE(intact(live));
}

TEST_F(MeshOp, AttachedAndLargeClassesAreNeverMeshed) {
  ThreadHeap th(heap.get(), 15);
  for (int i = 0; i < 64; ++i) th.alloc(kClass);  // attached span: not a candidate
  EXPECT_EQ(heap->mesher().meshClass(kClass, 0), 0u);
  EXPECT_EQ(heap->mesher().meshClass(27, 0), 0u);  // 4 KiB class: never meshed
  th.detachAll();
}

TEST_F(MeshOp, PacedStepMeshesEverythingWithinItsBudget) {
  ThreadHeap th(heap.get(), 16);
  std::vector<char*> live = fragment(th, 160);  // 560 KiB of free slots: above kMinGainBytes
  EXPECT_GT(heap->mesher().meshGainBytes(), 0u);
  EXPECT_EQ(heap->mesher().meshPaced(0, false), 0u) << "no budget, no work";
  size_t meshes = heap->mesher().meshPaced(uint64_t{10} * 1000 * 1000 * 1000, false);
  EXPECT_GT(meshes, 0u);
  EXPECT_EQ(heap->mesher().meshGainBytes(), 0u) << "the class is exhausted";
  EXPECT_EQ(heap->mesher().meshPaced(uint64_t{10} * 1000 * 1000 * 1000, false), 0u) << "the first call left work";
  HeapStats s = heap->stats();
  EXPECT_EQ(s.meshCount, meshes);
  EXPECT_EQ(s.pacedMeshes, meshes);
  EXPECT_EQ(s.pacedMeshedBytes, meshes * os::kPageSize);
  EXPECT_GT(s.pacedMeshNs, 0u);
  EXPECT_TRUE(intact(live));
}

// A step holds the class lock only to choose its pairs and to give the spans back: while its
// meshes run, an application thread takes the lock, and frees batched under it - of objects in
// the two spans just meshed too, whose page-map entries now lead to the destination - are kept.
TEST_F(MeshOp, MeshesRunWithoutTheClassLockAndFreesBatchedMeanwhileAreKept) {
  ThreadHeap th(heap.get(), 16);
  std::vector<char*> live = fragment(th, 64);
  struct Seen {
    GlobalHeap* heap;
    std::vector<char*>* live;
    size_t meshes = 0, lockFree = 0, rejected = 0;
    std::vector<char*> freed = {};
  } seen{heap.get(), &live};
  heap->mesher().setMeshedHookForTest(
      [](void* arg, int cls, MiniHeap* dst, MiniHeap* src) {
        auto* s = static_cast<Seen*>(arg);
        ++s->meshes;
        if (s->heap->classLockForTest(cls).tryLock()) {
          ++s->lockFree;
          s->heap->classLockForTest(cls).unlock();
        }
        // One object that was src's (reached through src's old virtual span) and one of dst's.
        for (MiniHeap* mh : {src, dst}) {
          char* start = s->heap->arena().pageAddress(mh->spanPage());
          for (auto it = s->live->begin(); it != s->live->end(); ++it) {
            if (*it < start || *it >= start + 4096) continue;
            void* p = *it;
            s->rejected += s->heap->freeBatch(cls, &p, 1);
            s->freed.push_back(*it);
            s->live->erase(it);
            break;
          }
        }
      },
      &seen);
  const uint64_t longBudget = uint64_t{10} * 1000 * 1000 * 1000;  // time never ends this step
  size_t made = heap->mesher().meshClass(kClass, 16, longBudget);
  heap->mesher().setMeshedHookForTest(nullptr, nullptr);
  ASSERT_GT(made, 1u);
  EXPECT_EQ(seen.meshes, made);
  EXPECT_EQ(seen.lockFree, made) << "a mesh ran while its step held the class lock";
  EXPECT_EQ(seen.rejected, 0u);
  EXPECT_EQ(seen.freed.size(), 2 * made);
  // Every object freed during the meshes is free in the span that now holds it, every other one
  // is intact and live.
  for (char* p : seen.freed) {
    uintptr_t e = heap->entryFor(p);
    uint32_t slot;
    ASSERT_TRUE(entryMiniHeap(e)->slotForOffset(static_cast<size_t>(p - heap->spanStartFor(p, e)), &slot));
    EXPECT_FALSE(entryMiniHeap(e)->isLive(slot)) << "a free batched during a mesh was lost";
  }
  for (char* p : live) {
    uintptr_t e = heap->entryFor(p);
    uint32_t slot;
    ASSERT_TRUE(entryMiniHeap(e)->slotForOffset(static_cast<size_t>(p - heap->spanStartFor(p, e)), &slot));
    ASSERT_TRUE(entryMiniHeap(e)->isLive(slot));
  }
  EXPECT_TRUE(intact(live));
}

// The pacing works where the gain is, stops when a step finds nothing, and starts again only
// once frees brought a useful amount of new room.
TEST_F(MeshOp, PacingRetriesAnExhaustedClassOnlyAfterNewFrees) {
  ThreadHeap th(heap.get(), 21);
  // Every span keeps slots 0, 8, ..., 56: nothing can mesh.
  std::vector<char*> live = fragmentWith({&th}, 1200, [](size_t, size_t slot, size_t) { return slot % 8 == 0; });
  uint64_t gain = heap->mesher().meshGainBytes();
  EXPECT_EQ(gain, heap->mesher().meshableFreeBytes());
  EXPECT_GE(gain, Mesher::kMinGainBytes);
  EXPECT_EQ(heap->mesher().meshPaced(uint64_t{10} * 1000 * 1000 * 1000, false), 0u);
  EXPECT_EQ(heap->mesher().meshGainBytes(), 0u) << "a futile step marks the class exhausted";
  // Frees: spans on odd pages keep slots 8, 24, 40, 56, the others 0, 16, 32, 48, so every odd
  // span now meshes with every even one. 4 slots of 1200 spans: 300 KiB of new room.
  auto freeSome = [&](size_t limit) {
    std::vector<char*> kept;
    size_t freed = 0;
    for (char* p : live) {
      uintptr_t e = heap->entryFor(p);
      size_t slot = static_cast<size_t>(p - heap->spanStartFor(p, e)) / 64;
      size_t page = entryMiniHeap(e)->spanPage();
      if (freed < limit && slot % 16 == (page % 2 == 1 ? 0u : 8u)) {
        heap->freeNonOwner(p, e, static_cast<uint32_t>(slot));
        ++freed;
      } else {
        kept.push_back(p);
      }
    }
    heap->drainAll();
    live = kept;
  };
  freeSome(1000);  // 62.5 KiB: under the threshold, nothing changes
  EXPECT_EQ(heap->mesher().meshGainBytes(), 0u);
  freeSome(~size_t{0});
  EXPECT_EQ(heap->mesher().meshGainBytes(), 0u) << "not again within kRetryNs";
  std::this_thread::sleep_for(std::chrono::nanoseconds(Mesher::kRetryNs));
  EXPECT_GT(heap->mesher().meshGainBytes(), 0u);
  size_t meshes = heap->mesher().meshPaced(uint64_t{10} * 1000 * 1000 * 1000, false);
  EXPECT_GT(meshes, 100u);
  EXPECT_EQ(heap->mesher().meshGainBytes(), 0u);
  EXPECT_TRUE(intact(live));
}

// MESH_SAME_THREAD_MESHING: two thread heaps whose spans only mesh across threads (thread 0
// keeps slots 0, 16, 32, 48 of every span, thread 1 slots 1, 17, 33, 49).
TEST_F(MeshOp, SameThreadMeshingNeverPairsSpansOfTwoThreads) {
  ThreadHeap th1(heap.get(), 17), th2(heap.get(), 18);
  std::vector<char*> live =
      fragmentWith({&th1, &th2}, 16, [](size_t thread, size_t slot, size_t) { return slot % 16 == thread; });
  ASSERT_NE(th1.lane(), th2.lane()) << "the two threads' spans are listed in one lane";
  heap->mesher().setSameThreadMeshing(true);
  EXPECT_EQ(heap->meshAll(), 0u);
  heap->mesher().setSameThreadMeshing(false);
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
  heap->mesher().setSameThreadMeshing(true);
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

// --- file backing: only meshed spans live in the memfd ------------------------------------

// [start, end) of every mapping of a libmesh memfd that overlaps the heap's arena.
std::vector<std::pair<uintptr_t, uintptr_t>> memfdMappingsIn(const Arena& arena) {
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  uintptr_t lo = reinterpret_cast<uintptr_t>(arena.base());
  uintptr_t hi = lo + arena.reservedBytes();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("memfd:libmesh-arena") == std::string::npos) continue;
    uintptr_t start = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    uintptr_t end = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    if (start < hi && end > lo) out.emplace_back(start, end);
  }
  return out;
}

// Pages of the heap's file that hold memory (mincore on its view reports the file's pages).
size_t fileResidentPages(Arena& arena) {
  size_t pages = arena.usedPageBound();
  std::vector<unsigned char> vec(pages);
  if (mincore(arena.fileView(), pages << os::kPageShift, vec.data()) != 0) return SIZE_MAX;
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

// Number of pages of free extents that lie in a memfd mapping, and of clean ("zeroed") free
// pages that do not read as zero. Both must always be 0.
std::pair<size_t, size_t> badFreePages(Arena& arena) {
  auto file = memfdMappingsIn(arena);
  size_t inFile = 0, notZero = 0;
  arena.forEachFreeExtentForTest([&](size_t page, size_t pages, bool dirty) {
    for (size_t i = 0; i < pages; ++i) {
      auto a = reinterpret_cast<uintptr_t>(arena.pageAddress(page + i));
      for (const auto& m : file) inFile += a >= m.first && a < m.second;
      if (!dirty) {
        const char* p = arena.pageAddress(page + i);
        for (size_t j = 0; j < os::kPageSize; j += 512) notZero += p[j] != 0;
      }
    }
  });
  return {inFile, notZero};
}

TEST_F(MeshOp, SpansStayAnonymousUntilTheyMesh) {
  ThreadHeap th(heap.get(), 21);
  std::vector<char*> live = fragment(th, 16);
  EXPECT_TRUE(memfdMappingsIn(heap->arena()).empty()) << "unmeshed spans must be anonymous";
  EXPECT_EQ(heap->stats().fileBackedSpans, 0u);
  ASSERT_GT(heap->meshAll(), 0u);
  EXPECT_FALSE(memfdMappingsIn(heap->arena()).empty());
  EXPECT_GT(heap->stats().fileBackedSpans, 0u);
  // Every object on a meshed page lies in a memfd mapping, and so does its twin.
  auto file = memfdMappingsIn(heap->arena());
  auto inFile = [&](const void* p) {
    auto a = reinterpret_cast<uintptr_t>(p);
    for (const auto& m : file) {
      if (a >= m.first && a < m.second) return true;
    }
    return false;
  };
  for (char* p : live) {
    uintptr_t e = heap->entryFor(p);
    MiniHeap* mh = entryMiniHeap(e);
    if (mh->fileBacked()) {
      EXPECT_TRUE(inFile(p));
      EXPECT_TRUE(inFile(mh->spanStart() + (p - heap->spanStartFor(p, e))));
    } else {
      EXPECT_FALSE(inFile(p));
    }
  }
  EXPECT_TRUE(intact(live));
}

TEST_F(MeshOp, ReleasedMeshedSpansReturnToAnonymousMemory) {
  ThreadHeap th(heap.get(), 22);
  std::vector<char*> live = fragment(th, 32);
  ASSERT_GT(heap->meshAll(), 0u);
  ASSERT_FALSE(memfdMappingsIn(heap->arena()).empty());
  ASSERT_GT(fileResidentPages(heap->arena()), 0u);
  keepOnly(*heap, live, [](size_t, char*) { return false; });
  th.detachAll();
  heap->releaseFreeMemory();
  HeapStats s = heap->stats();
  EXPECT_EQ(s.mhLive, 0u);
  EXPECT_EQ(s.fileBackedSpans, 0u);
  EXPECT_EQ(s.meshedPages, 0u);
  EXPECT_TRUE(memfdMappingsIn(heap->arena()).empty()) << "released meshed spans still map the memfd";
  // The file's pages were freed: nothing of it holds memory any more.
  EXPECT_EQ(fileResidentPages(heap->arena()), 0u);
  auto bad = badFreePages(heap->arena());
  EXPECT_EQ(bad.first, 0u);
  EXPECT_EQ(bad.second, 0u);
}

TEST_F(MeshOp, FreeListsHoldOnlyAnonymousPagesAcrossMeshCycles) {
  ThreadHeap th(heap.get(), 23);
  std::vector<char*> kept;
  for (int cycle = 0; cycle < 6; ++cycle) {
    std::vector<char*> live = fragment(th, 24);
    heap->meshAll();
    EXPECT_TRUE(intact(live)) << "cycle " << cycle;
    // Free half of the survivors (emptying some meshed spans), keep a few for later cycles.
    size_t n = 0;
    live = keepOnly(*heap, live, [&](size_t i, char*) { return (i + static_cast<size_t>(cycle)) % 2 == 0; });
    for (char* p : live) {
      if (++n % 4 == 0) kept.push_back(p);
    }
    live = keepOnly(*heap, live, [&](size_t i, char*) { return (i + 1) % 4 == 0; });
    th.detachAll();
    heap->releaseFreeMemory();
    auto bad = badFreePages(heap->arena());
    EXPECT_EQ(bad.first, 0u) << "free pages still in the memfd after cycle " << cycle;
    EXPECT_EQ(bad.second, 0u) << "clean free pages that are not zero after cycle " << cycle;
    EXPECT_TRUE(intact(kept)) << "cycle " << cycle;
  }
  keepOnly(*heap, kept, [](size_t, char*) { return false; });
  th.detachAll();
  heap->releaseFreeMemory();
  EXPECT_EQ(heap->stats().fileBackedSpans, 0u);
  EXPECT_TRUE(memfdMappingsIn(heap->arena()).empty());
}

// The GlobalHeap side of fork (the process-wide handlers in entry/runtime.cc do the same): the
// child gets its own copy of the meshed spans, the rest is copy-on-write.
TEST_F(MeshOp, ForkChildGetsPrivateMeshedAndAnonymousSpans) {
  ThreadHeap th(heap.get(), 24);
  std::vector<char*> meshed = fragment(th, 16);
  ASSERT_GT(heap->meshAll(), 0u);
  ASSERT_GT(heap->stats().fileBackedSpans, 0u);
  std::vector<char*> plain;  // in spans that never meshed
  for (int i = 0; i < 200; ++i) {
    auto* p = static_cast<char*>(th.alloc(kClass));
    std::memset(p, 0x33, 64);
    plain.push_back(p);
  }
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  heap->lockAll();
  ASSERT_TRUE(heap->prepareFork());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    bool ok = heap->finishForkInChild();
    char c;
    if (!ok) _exit(10);
    if (!intact(meshed)) _exit(11);
    for (char* p : meshed) p[0] ^= 0x55;  // must not reach the parent
    for (char* p : plain) p[0] = 0x44;
    if (read(go[0], &c, 1) != 1) _exit(12);
    for (char* p : meshed) p[0] ^= 0x55;
    if (!intact(meshed)) _exit(13);  // the parent's writes since did not reach us
    for (char* p : plain) {
      if (p[0] != 0x44 || p[1] != 0x33) _exit(14);
    }
    std::vector<char*> more = fragment(th, 16);  // the child meshes too
    heap->meshAll();
    _exit(intact(more) && intact(meshed) ? 0 : 15);
  }
  heap->finishForkInParent();
  heap->unlockAll();
  for (char* p : meshed) p[1] ^= 0x5a;
  for (char* p : plain) p[1] = 0x22;
  ASSERT_EQ(write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  for (char* p : meshed) p[1] ^= 0x5a;
  EXPECT_TRUE(intact(meshed)) << "the child's writes reached the parent";
  for (char* p : plain) EXPECT_EQ(p[0], 0x33);
  close(go[0]);
  close(go[1]);
  th.detachAll();
}

// A parent thread that keeps writing into meshed objects while another thread forks: the child
// sees each object as it was when fork ran, never a write made after it. The writer stores i
// into every meshed object, then into a plain (private, copy-on-write) variable: at fork the
// objects hold the variable's value or the next one, and a later value in the child can only
// have come from the parent after fork.
TEST_F(MeshOp, ForkChildSeesNoParentWriteMadeAfterFork) {
  ThreadHeap th(heap.get(), 25);
  std::vector<char*> meshed = fragment(th, 16);
  ASSERT_GT(heap->meshAll(), 0u);
  static std::atomic<uint64_t> plainSeq{0};  // static: not in the heap under test
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t i = 1; !stop.load(std::memory_order_relaxed); ++i) {
      for (char* p : meshed) reinterpret_cast<std::atomic<uint64_t>*>(p)->store(i, std::memory_order_relaxed);
      plainSeq.store(i, std::memory_order_release);
    }
  });
  while (plainSeq.load() < 3) std::this_thread::yield();
  heap->lockAll();
  ASSERT_TRUE(heap->prepareFork());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!heap->finishForkInChild()) _exit(10);
    uint64_t atFork = plainSeq.load(std::memory_order_acquire);
    usleep(50000);  // the parent's writer goes on meanwhile
    for (char* p : meshed) {
      uint64_t v = reinterpret_cast<std::atomic<uint64_t>*>(p)->load();
      if (v > atFork + 1 || v + 1 < atFork) _exit(11);
    }
    _exit(0);
  }
  heap->finishForkInParent();
  heap->unlockAll();
  uint64_t parentAt = plainSeq.load();
  while (plainSeq.load() < parentAt + 5) std::this_thread::yield();  // the writer did go on
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  stop = true;
  writer.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "child status " << status << " (11: a parent write made after fork reached the child)";
  th.detachAll();
}

TEST(MeshOpAnonymous, NoMeshingWithoutMemfd) {
  GlobalHeap heap;
  ASSERT_TRUE(heap.init(test::smallHeapConfig(false)));
  EXPECT_EQ(heap.meshAll(), 0u);
}

}  // namespace
}  // namespace mesh
