// Pause figures: the histogram, and the waits of application threads for meshing (a class lock a
// mesh step holds, the write barrier) that mesh_waits reports.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/pause_histogram.h"
#include "meshing/write_barrier.h"
#include "miniheap/page_entry.h"
#include "test_heap_fixture.h"
#include "thread/thread_heap.h"

namespace mesh {
namespace {

using test::FreshHeap;

// An application thread that needs a class lock while a mesh step holds it has its wait timed:
// that is the pause meshing causes, whatever the step itself took.
TEST_F(FreshHeap, WaitsForAStepAreTimed) {
  ThreadHeap th(heap.get(), 18);
  EXPECT_EQ(heap->stats().meshWaits, 0u);
  std::atomic<bool> holding{false};
  // The flag is set once the step holds the lock (a flag set before the call let a slow
  // stepper, under TSan on a loaded machine, lose the race for the lock to us).
  std::thread stepper([&] { heap->mesher().holdClassAsStepForTest(3, 30'000'000, &holding); });
  while (!holding) std::this_thread::yield();
  auto start = std::chrono::steady_clock::now();
  ASSERT_NE(th.alloc(3), nullptr);  // attaches a span of class 3: waits for the step
  uint64_t callNs = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
  stepper.join();
  HeapStats s = heap->stats();
  EXPECT_EQ(s.meshWaits, 1u);
  EXPECT_GE(s.meshWaitMaxNs, 10'000'000u) << "the wait lasted until the step ended";
  // The wait is part of the call (the step's 30 ms plus our wake-up, which load stretches).
  EXPECT_LE(s.meshWaitMaxNs, callNs);
  EXPECT_EQ(s.meshWaitP99Ns, s.meshWaitMaxNs) << "one wait: its own percentile";
  // An uncontended lock is not a wait.
  ASSERT_NE(th.alloc(5), nullptr);
  EXPECT_EQ(heap->stats().meshWaits, 1u);
}

// A batch of frees that meets a mesh step holding its class lock does not wait for the step: its
// objects are freed as remote frees (as another thread's frees are), and the step folds them
// into their spans when it lets go. No wait is counted.
TEST_F(FreshHeap, BatchedFreesDoNotWaitForAStep) {
  constexpr int kCls = 3;  // 64-byte objects, 64 per span
  ThreadHeap th(heap.get(), 19);
  std::vector<void*> objs;
  for (int i = 0; i < 256; ++i) objs.push_back(th.alloc(kCls));
  th.detachAll();  // four detached full spans
  std::atomic<bool> holding{false}, released{false};
  std::thread stepper([&] {
    heap->mesher().holdClassAsStepForTest(kCls, 1'000'000'000, &holding);
    released = true;
  });
  while (!holding) std::this_thread::yield();
  std::vector<void*> batch(objs.begin(), objs.begin() + 96);
  for (void* p : batch) heap->setFreedKey(p);  // as a freed stack leaves them
  EXPECT_EQ(heap->freeBatch(kCls, batch.data(), static_cast<uint32_t>(batch.size())), 0u);
  EXPECT_FALSE(released.load()) << "the batch waited for the step";
  EXPECT_EQ(heap->besideStepFreesForTest(), 96u);
  EXPECT_EQ(heap->stats().meshWaits, 0u);
  stepper.join();
  // Once the step has let go (no drain called here: the step folds what was queued beside it),
  // the freed objects are free in their spans (a span they emptied is released: no miniheap),
  // the others still live.
  for (size_t i = 0; i < objs.size(); ++i) {
    uintptr_t e = heap->entryFor(objs[i]);
    if (entryMiniHeap(e) == nullptr) {
      EXPECT_LT(i, 96u) << "object " << i << " lost its span";
      continue;
    }
    uint32_t slot;
    ASSERT_TRUE(entryMiniHeap(e)->slotForOffset(
        static_cast<size_t>(static_cast<char*>(objs[i]) - heap->spanStartFor(objs[i], e)), &slot));
    EXPECT_EQ(entryMiniHeap(e)->isLive(slot), i >= 96) << "object " << i;
  }
  EXPECT_EQ(heap->entryFor(objs[0]) >> kEntryMiniHeapShift, 0u) << "the emptied first span is released";
  // Without a step, batches take the lock as before.
  std::vector<void*> rest(objs.begin() + 96, objs.begin() + 128);
  for (void* p : rest) heap->setFreedKey(p);
  EXPECT_EQ(heap->freeBatch(kCls, rest.data(), static_cast<uint32_t>(rest.size())), 0u);
  EXPECT_EQ(heap->besideStepFreesForTest(), 96u);
}

// A thread that meets a mesh in progress (a write fault, a wrapped system call) waits in the
// barrier, and that wait is timed too.
TEST(WriteBarrier, WaitsWhileMeshingAreTimed) {
  PauseHistogram::Snapshot before;
  barrier::waits().addTo(&before);
  barrier::waitWhileMeshing();  // no mesh: returns at once, no wait
  barrier::begin();
  // The call counts itself (retries) before it waits: once the count moved, the waiter is in
  // the barrier, however slowly it was scheduled.
  uint64_t retries = barrier::retries();
  std::thread waiter([] { barrier::waitWhileMeshing(); });
  while (barrier::retries() == retries) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  barrier::end();
  waiter.join();
  PauseHistogram::Snapshot after;
  barrier::waits().addTo(&after);
  EXPECT_EQ(after.total, before.total + 1);
  EXPECT_GE(after.max, 15'000'000u);
}

TEST(PauseHistogram, PercentilesAreUpperBoundsWithinAQuarter) {
  PauseHistogram h;
  EXPECT_EQ(h.percentileNs(0.99), 0u) << "empty";
  for (int i = 0; i < 98; ++i) h.record(1000);
  h.record(1'000'000);
  h.record(2'000'000);
  EXPECT_EQ(h.maxNs(), 2'000'000u);
  uint64_t p50 = h.percentileNs(0.5);
  EXPECT_GE(p50, 1000u);
  EXPECT_LE(p50, 1250u);
  uint64_t p99 = h.percentileNs(0.99);  // the 99th of 100 values: 1 ms
  EXPECT_GE(p99, 1'000'000u);
  EXPECT_LE(p99, 1'250'000u);
  EXPECT_EQ(h.percentileNs(1.0), 2'000'000u) << "never above the largest time";
}

}  // namespace
}  // namespace mesh
