// The multithreaded churn workload shared by several stress programs.
//
// Each worker owns an array of blocks (its working set). One step picks a random slot; if the
// slot holds a block, the block is either verified and freed, or handed to another thread through
// the shared Exchange (swapped with whatever another thread left there, which this thread later
// frees: a cross-thread free). An empty slot is refilled with a new block of random size, stamped
// with content derived from its address and size. Every block is verified before it is freed.
#ifndef MESH_STRESS_WORKLOAD_H
#define MESH_STRESS_WORKLOAD_H

#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "common.h"

namespace stress {

// How a block was allocated, so it is released with the matching call.
enum class AllocKind : uint8_t { kMalloc, kCalloc, kNewArray, kAligned };

struct Block {
  void* p = nullptr;
  size_t n = 0;
  AllocKind kind = AllocKind::kMalloc;
};

// STRESS_NO_ALIGNED=1 in the environment replaces the posix_memalign share by malloc. Only for
// comparing with peers that misalign small aligned requests (Debian 12's mimalloc 2.0.9 returns
// e.g. a 128-byte aligned block for posix_memalign(512, 512): upstream mimalloc issue #700).
inline bool aligned_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("STRESS_NO_ALIGNED");
    return v == nullptr || std::strcmp(v, "1") != 0;
  }();
  return allowed;
}

// Allocates a block of n bytes with a randomly chosen entry point and stamps it. calloc'd memory
// is checked to be zero first (also when the allocator recycles a dirty block).
inline Block make_block(Rng& rng, size_t n, uint64_t seed) {
  Block b;
  b.n = n;
  uint64_t r = rng.below(100);
  if (r >= 98 && !aligned_allowed()) r = 0;
  if (r < 68) {
    b.kind = AllocKind::kMalloc;
    b.p = xmalloc(n, "malloc");
  } else if (r < 78) {
    b.kind = AllocKind::kCalloc;
    b.p = std::calloc(1, n);
    if (b.p == nullptr) fail("calloc(1, %zu) returned NULL", n);
    const auto* bytes = static_cast<const uint8_t*>(b.p);
    size_t check = n < 4096 ? n : 4096;
    size_t bad = find_byte_mismatch(bytes, 0, check, 0);
    if (bad != check)
      fail("calloc(1, %zu) = %p: byte at offset %zu is 0x%02x, not zero", n, b.p, bad, bytes[bad]);
  } else if (r < 98) {
    b.kind = AllocKind::kNewArray;
    b.p = new uint8_t[n];
  } else {
    b.kind = AllocKind::kAligned;
    size_t align = size_t{16} << rng.below(9);  // 16 .. 4096
    if (posix_memalign(&b.p, align, n) != 0) fail("posix_memalign(%zu, %zu) failed", align, n);
    if (reinterpret_cast<uintptr_t>(b.p) % align != 0)
      fail("posix_memalign(%zu, %zu) = %p is misaligned", align, n, b.p);
  }
  stamp(b.p, b.n, seed);
  return b;
}

// Verifies a block's stamp, then releases it with the call matching its allocation.
inline void release_block(Block& b, uint64_t seed, const char* ctx) {
  verify(b.p, b.n, seed, ctx);
  if (b.kind == AllocKind::kNewArray)
    delete[] static_cast<uint8_t*>(b.p);
  else
    std::free(b.p);
  b = Block{};
}

// Slots through which threads hand blocks to each other. Each slot swap is protected by one of
// a fixed set of striped mutexes.
class Exchange {
 public:
  explicit Exchange(size_t slots) : slots_(slots), locks_(kStripes) {}
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  size_t size() const { return slots_.size(); }

  // Leaves `in` in slot i and returns what was there before (possibly an empty block).
  Block swap(size_t i, Block in) {
    std::lock_guard<std::mutex> guard(locks_[i % kStripes].m);
    std::swap(in, slots_[i]);
    return in;
  }

  // Verifies and frees every block left. Only when no worker is running. Returns the count.
  size_t drain(uint64_t seed) {
    size_t freed = 0;
    for (Block& b : slots_) {
      if (b.p == nullptr) continue;
      release_block(b, seed, "exchange drain");
      ++freed;
    }
    return freed;
  }

 private:
  static constexpr size_t kStripes = 64;
  struct alignas(64) Lock {
    std::mutex m;
  };
  std::vector<Block> slots_;
  std::vector<Lock> locks_;
};

// Work given out to the workers in batches: either a fixed number of iterations or unbounded
// until stop() is called.
class Budget {
 public:
  // iterations == 0 means unbounded.
  explicit Budget(uint64_t iterations)
      : bounded_(iterations != 0), remaining_(static_cast<int64_t>(iterations)) {}

  // Returns how many iterations the caller may run now (at most `want`); 0 means finish.
  uint64_t claim(uint64_t want) {
    if (stop_.load(std::memory_order_relaxed)) return 0;
    if (!bounded_) return want;
    int64_t before = remaining_.fetch_sub(static_cast<int64_t>(want), std::memory_order_relaxed);
    if (before <= 0) return 0;
    return before < static_cast<int64_t>(want) ? static_cast<uint64_t>(before) : want;
  }
  void stop() { stop_.store(true, std::memory_order_relaxed); }
  bool stopped() const { return stop_.load(std::memory_order_relaxed); }
  uint64_t remaining() const {
    int64_t r = remaining_.load(std::memory_order_relaxed);
    return r > 0 ? static_cast<uint64_t>(r) : 0;
  }

 private:
  const bool bounded_;
  std::atomic<int64_t> remaining_;
  std::atomic<bool> stop_{false};
};

struct ChurnConfig {
  size_t working_set = 1000;    // blocks held per thread
  uint64_t seed = 1;            // stamp seed shared by all threads (any thread can verify)
  uint64_t handoff_one_in = 8;  // a held block is handed to another thread with chance 1/N
};

struct ChurnStats {
  uint64_t allocations = 0;
  uint64_t frees = 0;
  uint64_t handoffs = 0;

  void add(const ChurnStats& o) {
    allocations += o.allocations;
    frees += o.frees;
    handoffs += o.handoffs;
  }
};

// One worker thread's loop. Runs until the budget is exhausted, then frees its working set.
inline ChurnStats churn(const ChurnConfig& cfg, Exchange& exchange, Budget& budget,
                        uint64_t thread_seed) {
  constexpr uint64_t kBatch = 256;
  Rng rng(thread_seed);
  std::vector<Block> mine(cfg.working_set);
  ChurnStats st;
  while (uint64_t batch = budget.claim(kBatch)) {
    for (uint64_t i = 0; i < batch; ++i) {
      Block& b = mine[rng.below(mine.size())];
      if (b.p != nullptr) {
        if (rng.one_in(cfg.handoff_one_in)) {
          b = exchange.swap(rng.below(exchange.size()), b);
          ++st.handoffs;
          if (b.p != nullptr) verify(b.p, b.n, cfg.seed, "block received from another thread");
        } else {
          release_block(b, cfg.seed, "free");
          ++st.frees;
        }
      }
      if (b.p == nullptr) {
        b = make_block(rng, random_size(rng), cfg.seed);
        ++st.allocations;
      }
    }
  }
  for (Block& b : mine) {
    if (b.p == nullptr) continue;
    release_block(b, cfg.seed, "final free");
    ++st.frees;
  }
  return st;
}

}  // namespace stress

#endif  // MESH_STRESS_WORKLOAD_H
