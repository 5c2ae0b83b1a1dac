// mesh_ops_helper's modes for the caches of quiet threads (MESH_QUIET_THREAD_MS; behaviour
// contract D32): quiet-thread and quiet-race (see the usage at the top of ops_helper.cc).
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ops_helper_util.h"

namespace ops_helper {

namespace {

constexpr size_t kQuietSizes[] = {16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024};
constexpr size_t kQuietPerSize = 8192;
unsigned char* g_quietObjects[sizeof kQuietSizes / sizeof kQuietSizes[0]][kQuietPerSize];
int g_quietPipe[2];
std::atomic<int> g_quietPhase{0};  // 1: the worker freed its objects and sleeps; 2: it is done
std::atomic<int> g_quietFailure{0};

unsigned char QuietMark(size_t k, size_t i) { return static_cast<unsigned char>(k * 37 + i * 11 + 1); }
bool QuietKept(size_t k, size_t i) { return k % 2 == 0 && i % 16 == 0; }

// Allocates kQuietPerSize objects of each size, keeps 1 in 16 of every other size (filled with
// a mark), frees the others in a scattered order: its freed stacks and attached spans then hold
// free objects of many spans, and those of the sizes with nothing kept are all that keeps their
// spans allocated. Then sleeps in read() until main writes to the pipe, checks the kept objects,
// allocates and frees again (the cache must work after it was returned) and frees everything.
void* QuietWorker(void*) {
  constexpr size_t kinds = sizeof kQuietSizes / sizeof kQuietSizes[0];
  for (size_t k = 0; k < kinds; ++k) {
    for (size_t i = 0; i < kQuietPerSize; ++i) {
      g_quietObjects[k][i] = static_cast<unsigned char*>(malloc(kQuietSizes[k]));
      if (g_quietObjects[k][i] == nullptr) abort();
      memset(g_quietObjects[k][i], QuietMark(k, i), kQuietSizes[k]);
    }
  }
  for (size_t step = 0; step < kQuietPerSize; ++step) {
    size_t i = (step * 4099) % kQuietPerSize;  // 4099 is prime: every index once
    for (size_t k = 0; k < kinds; ++k) {
      if (QuietKept(k, i)) continue;
      free(g_quietObjects[k][i]);
      g_quietObjects[k][i] = nullptr;
    }
  }
  g_quietPhase.store(1);
  char c;
  while (read(g_quietPipe[0], &c, 1) < 0) {
  }
  for (size_t k = 0; k < kinds; ++k) {
    for (size_t i = 0; i < kQuietPerSize; ++i) {
      if (!QuietKept(k, i)) continue;
      for (size_t b = 0; b < kQuietSizes[k]; ++b) {
        if (g_quietObjects[k][i][b] != QuietMark(k, i)) g_quietFailure.store(1);
      }
    }
  }
  // Fresh objects after the return: distinct, usable, writable.
  static unsigned char* fresh[4096];
  for (size_t i = 0; i < 4096; ++i) {
    fresh[i] = static_cast<unsigned char*>(malloc(64));
    if (fresh[i] == nullptr) abort();
    memset(fresh[i], static_cast<int>(i & 0xff), 64);
  }
  for (size_t i = 0; i < 4096; ++i) {
    for (size_t b = 0; b < 64; ++b) {
      if (fresh[i][b] != static_cast<unsigned char>(i & 0xff)) g_quietFailure.store(2);
    }
    free(fresh[i]);
  }
  for (size_t k = 0; k < kinds; ++k) {
    for (size_t i = 0; i < kQuietPerSize; ++i) free(g_quietObjects[k][i]);
  }
  g_quietPhase.store(2);
  return nullptr;
}

}  // namespace

// Exit codes: 20 no worker thread, 21 the worker's objects were damaged, 22 fresh objects after
// the return were not distinct.
int QuietThread(long ms) {
  if (pipe(g_quietPipe) != 0) return 20;
  pthread_t worker;
  if (pthread_create(&worker, nullptr, QuietWorker, nullptr) != 0) return 20;
  while (g_quietPhase.load() == 0) SleepMs(5);
  SleepMs(50);  // the worker is in read() by now
  mesh_stats before = Stats();
  long waited = 0;
  mesh_stats after = before;
  for (; waited < ms; waited += 50) {
    after = Stats();
    if (after.thread_cache_bytes == 0 && after.quiet_cache_returns > before.quiet_cache_returns) break;
    SleepMs(50);
  }
  after = Stats();
  Say("cache_before_kib=%llu cache_after_kib=%llu returns=%llu arena_before_kib=%llu arena_after_kib=%llu "
      "waited_ms=%ld\n",
      (unsigned long long)(before.thread_cache_bytes >> 10), (unsigned long long)(after.thread_cache_bytes >> 10),
      (unsigned long long)(after.quiet_cache_returns - before.quiet_cache_returns),
      (unsigned long long)(before.arena_bytes >> 10), (unsigned long long)(after.arena_bytes >> 10), waited);
  char c = 'x';
  if (write(g_quietPipe[1], &c, 1) != 1) return 20;
  pthread_join(worker, nullptr);
  int failure = g_quietFailure.load();
  if (failure != 0) Say("worker failure %d\n", failure);
  return failure == 0 ? 0 : 20 + failure;
}

namespace {

// Threads that pause for 0 to 50 ms between bursts while the background thread returns the
// caches of those that look quiet (run with MESH_QUIET_THREAD_MS=1, MESH_PERIOD_MS=1): the
// handshake between an owner coming back and the thread returning its cache, many times over.
// Every object carries its owner's and its own number in every word: an object handed out
// twice, or returned while in use, shows as a wrong word. Exit 20: no background thread or no
// worker thread, 30: a wrong word.
std::atomic<bool> g_raceStop{false};
std::atomic<int> g_raceBad{0};

void* RaceWorker(void* arg) {
  uint64_t id = reinterpret_cast<uintptr_t>(arg);
  uint64_t x = 0x9E3779B97F4A7C15ull * (id + 1);
  constexpr size_t kLive = 256;
  uint64_t* live[kLive] = {};
  size_t sizes[kLive] = {};
  uint64_t round = 0;
  while (!g_raceStop.load(std::memory_order_relaxed)) {
    ++round;
    for (size_t i = 0; i < kLive; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      if (live[i] != nullptr && (x & 3) != 0) continue;
      if (live[i] != nullptr) {
        for (size_t w = 0; w < sizes[i] / 8; ++w) {
          if (live[i][w] != (id << 48 | i << 32 | w)) g_raceBad.store(1);
        }
        free(live[i]);
      }
      sizes[i] = 16 * (1 + (x >> 8) % 32);
      live[i] = static_cast<uint64_t*>(malloc(sizes[i]));
      if (live[i] == nullptr) abort();
      for (size_t w = 0; w < sizes[i] / 8; ++w) live[i][w] = id << 48 | i << 32 | w;
    }
    // Quiet for 0 to 50 ms: often long enough for the background thread, which looks every 1 to
    // 16 ms (MESH_PERIOD_MS=1 and its idle back-off), to return the cache.
    long us = static_cast<long>((x >> 20) % 50000);
    timespec ts{0, us * 1000};
    nanosleep(&ts, nullptr);
  }
  for (size_t i = 0; i < kLive; ++i) {
    if (live[i] == nullptr) continue;
    for (size_t w = 0; w < sizes[i] / 8; ++w) {
      if (live[i][w] != (id << 48 | i << 32 | w)) g_raceBad.store(1);
    }
    free(live[i]);
  }
  return nullptr;
}

}  // namespace

int QuietRace(long ms) {
  WarmUp();  // starts the background thread (MESH_BACKGROUND_THREAD=1)
  if (!WaitForThreads(2, 5000)) return 20;
  constexpr int kThreads = 3;
  pthread_t t[kThreads];
  for (int i = 0; i < kThreads; ++i) {
    if (pthread_create(&t[i], nullptr, RaceWorker, reinterpret_cast<void*>(static_cast<uintptr_t>(i + 1))) != 0) {
      return 20;
    }
  }
  mesh_stats before = Stats();
  SleepMs(ms);
  g_raceStop.store(true);
  for (auto& th : t) pthread_join(th, nullptr);
  mesh_stats after = Stats();
  Say("returns=%llu bad=%d\n", (unsigned long long)(after.quiet_cache_returns - before.quiet_cache_returns),
      g_raceBad.load());
  return g_raceBad.load() == 0 ? 0 : 30;
}

}  // namespace ops_helper
