// mesh_ops_helper's mode for sparse spans (MESH_SPARSE_PCT; behaviour contract G33): sparse-churn
// (see the usage at the top of ops_helper.cc).
#include <pthread.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ops_helper_util.h"

namespace ops_helper {

namespace {

constexpr size_t kObjects = 131072;
constexpr size_t kSize = 256;

struct Slot {
  uint64_t* p;
  uint64_t version;
  std::atomic<uint32_t> busy;  // a worker is replacing the object
};

uint64_t Pattern(size_t i, uint64_t version, size_t w) { return (i << 32) ^ (version << 16) ^ w ^ 0x5a5a; }

void Fill(Slot& s, size_t i) {
  for (size_t w = 0; w < kSize / 8; ++w) s.p[w] = Pattern(i, s.version, w);
}

bool Intact(const Slot& s, size_t i) {
  for (size_t w = 0; w < kSize / 8; ++w) {
    if (s.p[w] != Pattern(i, s.version, w)) return false;
  }
  return true;
}

uint64_t Next(uint64_t* x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

struct Churn {
  Slot* slots;
  const uint32_t* survivors;
  size_t kept;
  long rounds;
  uint64_t seed;
  std::atomic<int> failed{0};
};

// `rounds` replacements: free a random survivor (after checking it), allocate its successor and
// fill it. With several workers each takes the slot it replaces (busy), so an object one thread
// allocated is often freed by another.
void* Replace(void* arg) {
  Churn& c = *static_cast<Churn*>(arg);
  uint64_t x = c.seed;
  for (long r = 0; r < c.rounds; ++r) {
    size_t i = c.survivors[Next(&x) % c.kept];
    Slot& s = c.slots[i];
    if (s.busy.exchange(1, std::memory_order_acquire) != 0) continue;
    if (!Intact(s, i)) c.failed.store(1);
    free(s.p);
    s.p = static_cast<uint64_t*>(malloc(kSize));
    if (s.p == nullptr) abort();
    ++s.version;
    Fill(s, i);
    s.busy.store(0, std::memory_order_release);
  }
  return nullptr;
}

}  // namespace

// A cache whose data changes shape: 131,072 objects of 256 bytes (32 MiB) made by the main
// thread, seven in eight freed in a scattered order, then `rounds` replacements of random
// survivors in all by `threads` threads (the main thread itself when 1). Reports the arena in use
// after the frees and after the replacements (the workers have exited: their caches are back),
// and the sparse frees. The table lives in its own mapping, outside the heap.
// Exit codes: 30 no memory for the table or no thread, 31 an object's contents changed.
int SparseChurn(long rounds, long threads) {
  constexpr size_t kTableBytes = 2 * kObjects * sizeof(Slot);
  void* table = mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (table == MAP_FAILED || threads < 1 || threads > 16) return 30;
  Slot* slots = static_cast<Slot*>(table);
  for (size_t i = 0; i < kObjects; ++i) {
    slots[i].p = static_cast<uint64_t*>(malloc(kSize));
    if (slots[i].p == nullptr) abort();
    slots[i].version = 0;
    Fill(slots[i], i);
  }
  // The survivors' indices, in the table's spare tail (the table is twice as long as needed).
  uint32_t* survivors = reinterpret_cast<uint32_t*>(slots + kObjects);
  size_t kept = 0;
  for (size_t step = 0; step < kObjects; ++step) {
    size_t i = (step * 40503) % kObjects;  // odd: every index once
    if (i % 8 == 3) {
      survivors[kept++] = static_cast<uint32_t>(i);
    } else {
      free(slots[i].p);
      slots[i].p = nullptr;
    }
  }
  mesh_stats before = Stats();
  Churn churn[16];
  for (long t = 0; t < threads; ++t) {
    churn[t].slots = slots;
    churn[t].survivors = survivors;
    churn[t].kept = kept;
    churn[t].rounds = rounds / threads;
    churn[t].seed = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(t + 1);
  }
  if (threads == 1) {
    Replace(&churn[0]);
  } else {
    pthread_t workers[16];
    for (long t = 0; t < threads; ++t) {
      if (pthread_create(&workers[t], nullptr, Replace, &churn[t]) != 0) return 30;
    }
    for (long t = 0; t < threads; ++t) pthread_join(workers[t], nullptr);
  }
  mesh_stats after = Stats();
  for (long t = 0; t < threads; ++t) {
    if (churn[t].failed.load() != 0) return 31;
  }
  for (size_t k = 0; k < kept; ++k) {
    if (!Intact(slots[survivors[k]], survivors[k])) return 31;
  }
  Say("kept=%zu arena_before_kib=%llu arena_after_kib=%llu sparse_frees=%llu\n", kept,
      (unsigned long long)(before.arena_bytes >> 10), (unsigned long long)(after.arena_bytes >> 10),
      (unsigned long long)(after.sparse_frees - before.sparse_frees));
  for (size_t k = 0; k < kept; ++k) free(slots[survivors[k]].p);
  munmap(table, kTableBytes);
  return 0;
}

}  // namespace ops_helper
