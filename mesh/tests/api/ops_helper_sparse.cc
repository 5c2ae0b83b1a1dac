// mesh_ops_helper's mode for sparse spans (MESH_SPARSE_PCT; behaviour contract G33): sparse-churn
// (see the usage at the top of ops_helper.cc).
#include <sys/mman.h>

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

}  // namespace

// A cache whose data changes shape, in one thread: 131,072 objects of 256 bytes (32 MiB), seven
// in eight freed in a scattered order, then `rounds` replacements (free a random survivor, check
// it, allocate its successor, fill it). Reports the arena in use after the frees and after the
// replacements, and the sparse frees. The table lives in its own mapping, outside the heap.
// Exit codes: 30 no memory for the table, 31 an object's contents changed.
int SparseChurn(long rounds) {
  constexpr size_t kTableBytes = 2 * kObjects * sizeof(Slot);
  void* table = mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (table == MAP_FAILED) return 30;
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
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (long r = 0; r < rounds; ++r) {
    size_t i = survivors[Next(&x) % kept];
    if (!Intact(slots[i], i)) return 31;
    free(slots[i].p);
    slots[i].p = static_cast<uint64_t*>(malloc(kSize));
    if (slots[i].p == nullptr) abort();
    ++slots[i].version;
    Fill(slots[i], i);
  }
  mesh_stats after = Stats();
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
