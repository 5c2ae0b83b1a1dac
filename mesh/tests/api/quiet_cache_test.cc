// The handshake by which the background thread returns the cache of another thread
// (MESH_QUIET_THREAD_MS; docs/behaviour.md, D32), driven directly.
//
// Linked with libmesh's static library, like meshing_frames_test.cc, so that the test can call
// the hook that returns every other thread's cache at once, whatever the thread is doing. Worker
// threads allocate, fill, check and free without pause while the test returns their caches
// thousands of times: owners are caught both outside the allocator (their cache is returned,
// their next call waits) and inside it (the claim is given up). Every word of every object
// names its owner and place, so an object handed out twice or returned while in use shows.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "entry/background.h"
#include "mesh/mesh.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_bad{0};
std::atomic<uint64_t> g_ops{0};

uint64_t Word(uint64_t id, uint64_t i, uint64_t w) { return id << 56 | i << 32 | w; }

void* Worker(void* arg) {
  uint64_t id = reinterpret_cast<uintptr_t>(arg);
  uint64_t x = 0x9E3779B97F4A7C15ull * (id + 3);
  constexpr size_t kLive = 512;
  static thread_local uint64_t* live[kLive];
  static thread_local size_t sizes[kLive];
  uint64_t ops = 0;
  auto check = [&](size_t i) {
    for (size_t w = 0; w < sizes[i] / 8; ++w) {
      if (live[i][w] != Word(id, i, w)) g_bad.fetch_add(1);
    }
  };
  while (!g_stop.load(std::memory_order_relaxed)) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t i = x % kLive;
    if (live[i] != nullptr) {
      check(i);
      free(live[i]);
    }
    // Mostly small objects of many classes; 1 in 64 a large block a thread cache keeps.
    sizes[i] = (x >> 16) % 64 == 0 ? size_t{64} << 10 : 16 * (1 + (x >> 24) % 64);
    live[i] = static_cast<uint64_t*>(malloc(sizes[i]));
    if (live[i] == nullptr) abort();
    for (size_t w = 0; w < sizes[i] / 8; ++w) live[i][w] = Word(id, i, w);
    ++ops;
  }
  for (size_t i = 0; i < kLive; ++i) {
    if (live[i] == nullptr) continue;
    check(i);
    free(live[i]);
    live[i] = nullptr;
  }
  g_ops.fetch_add(ops);
  return nullptr;
}

TEST(QuietCaches, D32_ReturningTheCachesOfRunningThreadsNeverHandsAnObjectOutTwice) {
  size_t busy = 0;
  mesh::background::returnOtherCachesForTest(&busy);  // initialises the heap
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "caches of quiet threads are not returned under ThreadSanitizer";
#endif
  constexpr int kWorkers = 2;
  pthread_t t[kWorkers];
  for (int i = 0; i < kWorkers; ++i) {
    ASSERT_EQ(pthread_create(&t[i], nullptr, Worker, reinterpret_cast<void*>(static_cast<uintptr_t>(i + 1))), 0);
  }
  size_t returned = 0, refused = 0, calls = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(2000);
  while (std::chrono::steady_clock::now() < end) {
    returned += mesh::background::returnOtherCachesForTest(&busy);
    refused += busy;
    ++calls;
  }
  g_stop.store(true);
  for (auto& th : t) pthread_join(th, nullptr);
  EXPECT_EQ(g_bad.load(), 0u) << "words changed under their owner";
  // Both outcomes of the handshake happened, many times.
  EXPECT_GE(returned, 100u) << calls << " calls";
  EXPECT_GE(refused, 1u) << calls << " calls, " << returned << " returned";
  EXPECT_GE(g_ops.load(), 10000u);
  RecordProperty("returned", static_cast<int>(returned));
  RecordProperty("refused", static_cast<int>(refused));
  std::printf("calls=%zu returned=%zu refused=%zu ops=%llu\n", calls, returned, refused,
              static_cast<unsigned long long>(g_ops.load()));
}

}  // namespace
