// micro-bench: allocator speed micro-benchmarks (google-benchmark).
//
// The binary deliberately does not link libmesh: it calls the plain malloc/free of whatever
// allocator the dynamic linker resolves, so the same executable is run once per allocator with
// LD_PRELOAD=<allocator.so> (or without LD_PRELOAD for glibc). scripts/run-perf.sh drives it.
//
// Every benchmark reports items_per_second where one item is one object that was allocated and
// freed, plus a "time_per_op" counter (wall-clock seconds per such object, the inverse). All
// benchmarks use real (wall-clock) time: an allocator may do part of its work on other threads, and
// page faults/munmap cost system time that a thread CPU clock would partly hide.
//
// Families (see perf/README.md):
//   pair/<size>                 malloc(size) + touch + free, repeated (single thread)
//   batch/<lo>-<hi>             1000 mallocs of random sizes in [lo, hi], then 1000 frees in a
//                               shuffled order (single thread)
//   xthread/prodcons/<lo>-<hi>  thread 0 allocates, hands the object over a bounded SPSC ring to
//                               thread 1, which frees it (remote frees only)
//   xthread/symmetric/<lo>-<hi> both threads allocate and each frees the other's objects
//
// Extra flag (consumed before google-benchmark sees the command line):
//   --expect-malloc-from=LIB    exit with status 3 unless malloc resolves into LIB: a path
//                               (compared after realpath) or a file-name prefix such as
//                               "libc.so". Guards against an LD_PRELOAD the loader ignored.

#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <limits.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "harness/rng.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Deterministic pseudo-random numbers (splitmix64 reduced by modulo, harness/rng.h): identical
// sequences under every allocator. The modulo bias is irrelevant for size selection.

using harness::ModuloRng;

// A pre-computed table of sizes so the timed loops spend nothing on random number generation.
// The length is a power of two so the index wraps with a mask.
constexpr size_t kSizeTableLen = 4096;

std::vector<size_t> MakeSizeTable(size_t lo, size_t hi, uint64_t seed) {
  ModuloRng rng(seed);
  std::vector<size_t> sizes(kSizeTableLen);
  for (auto& s : sizes) s = rng.between(lo, hi);
  return sizes;
}

// Writes the first byte so neither the compiler nor a lazy allocator can skip the memory.
inline void Touch(void* p) {
  benchmark::DoNotOptimize(p);
  *static_cast<volatile unsigned char*>(p) = 0xa5;
}

[[noreturn]] void OutOfMemory(size_t size) {
  std::fprintf(stderr, "micro-bench: malloc(%zu) returned NULL\n", size);
  std::abort();
}

// time_per_op: seconds per item, i.e. the inverse of items_per_second (google-benchmark divides
// a kIsRate counter by the measured time; kInvert flips the quotient). The console shows it
// with an SI prefix ("12.3ns"); the JSON holds plain seconds.
void ReportItems(benchmark::State& state, int64_t items) {
  state.SetItemsProcessed(items);
  state.counters["time_per_op"] = benchmark::Counter(
      static_cast<double>(items), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// ---------------------------------------------------------------------------------------------
// Single-threaded benchmarks.

void BM_Pair(benchmark::State& state, size_t size) {
  for (auto _ : state) {
    void* p = std::malloc(size);
    if (p == nullptr) {
      state.SkipWithError("malloc returned NULL");
      break;
    }
    Touch(p);
    std::free(p);
  }
  ReportItems(state, state.iterations());
}

constexpr size_t kBatchObjects = 1000;

void BM_Batch(benchmark::State& state, size_t lo, size_t hi) {
  const std::vector<size_t> sizes = MakeSizeTable(lo, hi, 0x5eed0001 + lo * 31 + hi);
  // A fixed shuffled free order: freeing in allocation order (or its reverse) is the best case
  // for most allocators' free lists and says little about real programs.
  std::vector<size_t> order(kBatchObjects);
  for (size_t i = 0; i < kBatchObjects; ++i) order[i] = i;
  ModuloRng rng(0x0bad5eed);
  for (size_t i = kBatchObjects - 1; i > 0; --i) {
    std::swap(order[i], order[static_cast<size_t>(rng.below(i + 1))]);
  }
  std::vector<void*> ptrs(kBatchObjects, nullptr);
  size_t cursor = 0;  // walks the size table so consecutive batches use different sizes

  for (auto _ : state) {
    for (size_t i = 0; i < kBatchObjects; ++i) {
      const size_t size = sizes[cursor++ & (kSizeTableLen - 1)];
      void* p = std::malloc(size);
      if (p == nullptr) OutOfMemory(size);
      Touch(p);
      ptrs[i] = p;
    }
    for (size_t i = 0; i < kBatchObjects; ++i) std::free(ptrs[order[i]]);
    benchmark::ClobberMemory();
  }
  ReportItems(state, state.iterations() * static_cast<int64_t>(kBatchObjects));
}

// ---------------------------------------------------------------------------------------------
// Two-thread benchmarks. They use google-benchmark's Threads(2): both threads run the same
// number of iterations (state.max_iterations), so what one thread hands over the other
// consumes exactly. google-benchmark puts a barrier at the end of the timed loop, so every
// hand-over has to be complete before a thread leaves its loop (never after it): a thread
// waiting at the barrier cannot drain a ring its peer is blocked on.

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spin briefly, then yield: with two cores and possibly a background allocator thread, pure
// spinning could starve the very thread being waited for.
class Backoff {
 public:
  void Wait() {
    if (++spins_ < 128) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  void Reset() { spins_ = 0; }

 private:
  unsigned spins_ = 0;
};

constexpr size_t kCacheLine = 64;

// Bounded single-producer/single-consumer ring of pointers. Each side keeps a private copy of
// the other side's index and reloads it only when the ring looks full (empty). The producer
// publishes its index every kPublishEvery pushes (and whenever the ring looks full, and on
// Flush), so the shared index changes hands once per group rather than once per object: the
// benchmark then measures the allocator's remote frees, not cache-line ping-pong on the ring.
template <size_t Capacity>
class SpscRing {
  static_assert((Capacity & (Capacity - 1)) == 0, "capacity must be a power of two");
  static constexpr uint64_t kPublishEvery = 32;
  static_assert(Capacity % kPublishEvery == 0);

 public:
  bool TryPush(void* p) {
    if (producer_tail_ - producer_head_cache_ == Capacity) {
      Flush();  // the consumer can only make room once it sees what is there
      producer_head_cache_ = head_.load(std::memory_order_acquire);
      if (producer_tail_ - producer_head_cache_ == Capacity) return false;
    }
    slots_[producer_tail_ & (Capacity - 1)] = p;
    ++producer_tail_;
    if (producer_tail_ % kPublishEvery == 0) Flush();
    return true;
  }

  // Producer: makes every pushed pointer visible to the consumer.
  void Flush() { tail_.store(producer_tail_, std::memory_order_release); }

  bool TryPop(void** out) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == consumer_tail_cache_) {
      consumer_tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == consumer_tail_cache_) return false;
    }
    *out = slots_[head & (Capacity - 1)];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

 private:
  alignas(kCacheLine) std::atomic<uint64_t> tail_{0};  // published by the producer
  alignas(kCacheLine) uint64_t producer_tail_ = 0;     // producer-private from here ...
  uint64_t producer_head_cache_ = 0;                   // ... to here
  alignas(kCacheLine) std::atomic<uint64_t> head_{0};  // written by the consumer
  alignas(kCacheLine) uint64_t consumer_tail_cache_ = 0;
  alignas(kCacheLine) void* slots_[Capacity] = {};
};

constexpr size_t kRingCapacity = 1024;
using Ring = SpscRing<kRingCapacity>;

// One ring (or pair of rings) per benchmark instance, shared by its two threads. Runs of the
// same benchmark are sequential and always leave the rings empty, so the state carries over.
struct XThreadShared {
  Ring a_to_b;
  Ring b_to_a;
};

// Thread 0 produces, thread 1 consumes: every free is a remote free.
void BM_ProdCons(benchmark::State& state, XThreadShared* shared, size_t lo, size_t hi) {
  Ring& ring = shared->a_to_b;
  Backoff backoff;
  if (state.thread_index() == 0) {
    const std::vector<size_t> sizes = MakeSizeTable(lo, hi, 0x9a0d0001 + lo * 31 + hi);
    size_t cursor = 0;
    for (auto _ : state) {
      const size_t size = sizes[cursor++ & (kSizeTableLen - 1)];
      void* p = std::malloc(size);
      if (p == nullptr) OutOfMemory(size);
      Touch(p);
      backoff.Reset();
      while (!ring.TryPush(p)) backoff.Wait();
      // The last object must be visible before this thread reaches the end-of-loop barrier.
      if (cursor == static_cast<size_t>(state.max_iterations)) ring.Flush();
    }
    ReportItems(state, state.iterations());
  } else {
    for (auto _ : state) {
      void* p = nullptr;
      backoff.Reset();
      while (!ring.TryPop(&p)) backoff.Wait();
      benchmark::DoNotOptimize(*static_cast<volatile unsigned char*>(p));
      std::free(p);
    }
    // Items are counted once, by the producer: one item = one object allocated and freed.
    ReportItems(state, 0);
  }
}

// Both threads allocate and hand every object to the other thread, which frees it. Each thread
// pops opportunistically every iteration and drains its inbound ring whenever its outbound one
// is full, so neither blocks the other for good. In its last iteration a thread publishes what
// it still holds back and then waits for (and frees) the rest of its peer's objects: the peer
// produces exactly as many, and the wait is part of the measured time.
void BM_Symmetric(benchmark::State& state, XThreadShared* shared, size_t lo, size_t hi) {
  const bool first = state.thread_index() == 0;
  Ring& out = first ? shared->a_to_b : shared->b_to_a;
  Ring& in = first ? shared->b_to_a : shared->a_to_b;
  const std::vector<size_t> sizes =
      MakeSizeTable(lo, hi, (first ? 0x5a0d0001 : 0x5a0d0002) + lo * 31 + hi);
  const int64_t total = static_cast<int64_t>(state.max_iterations);
  int64_t produced = 0;
  int64_t freed = 0;
  Backoff backoff;
  auto free_one = [&](void* q) {
    benchmark::DoNotOptimize(*static_cast<volatile unsigned char*>(q));
    std::free(q);
    ++freed;
  };

  for (auto _ : state) {
    const size_t size = sizes[static_cast<size_t>(produced) & (kSizeTableLen - 1)];
    void* p = std::malloc(size);
    if (p == nullptr) OutOfMemory(size);
    Touch(p);
    void* q = nullptr;
    backoff.Reset();
    while (!out.TryPush(p)) {
      if (in.TryPop(&q)) {
        free_one(q);
      } else {
        backoff.Wait();
      }
    }
    if (in.TryPop(&q)) free_one(q);

    if (++produced == total) {
      out.Flush();
      backoff.Reset();
      while (freed < total) {
        if (in.TryPop(&q)) {
          free_one(q);
          backoff.Reset();
        } else {
          backoff.Wait();
        }
      }
    }
  }
  ReportItems(state, state.iterations());
}

// ---------------------------------------------------------------------------------------------
// Registration and the malloc-origin check.

void RegisterAll() {
  // Small and medium sizes (size-classed in most allocators), then large ones (typically
  // page-granular spans or direct mmap).
  static constexpr size_t kPairSizes[] = {16,   32,    64,    128,    256,     512,    1024,
                                          4096, 16384, 65536, 262144, 1 << 20, 4 << 20};
  for (size_t size : kPairSizes) {
    benchmark::RegisterBenchmark(("pair/" + std::to_string(size)).c_str(), BM_Pair, size)
        ->UseRealTime();
  }

  struct Range {
    size_t lo, hi;
  };
  static constexpr Range kBatchRanges[] = {{16, 128}, {16, 1024}, {1024, 16384}};
  for (const Range& r : kBatchRanges) {
    const std::string name = "batch/" + std::to_string(r.lo) + "-" + std::to_string(r.hi);
    benchmark::RegisterBenchmark(name.c_str(), BM_Batch, r.lo, r.hi)->UseRealTime();
  }

  // Leaked on purpose: the benchmark threads may touch them until the very end of main.
  static XThreadShared* const prodcons_rings = new XThreadShared;
  static XThreadShared* const symmetric_rings = new XThreadShared;
  benchmark::RegisterBenchmark("xthread/prodcons/16-1024", BM_ProdCons, prodcons_rings, size_t{16},
                               size_t{1024})
      ->Threads(2)
      ->UseRealTime();
  benchmark::RegisterBenchmark("xthread/symmetric/16-1024", BM_Symmetric, symmetric_rings,
                               size_t{16}, size_t{1024})
      ->Threads(2)
      ->UseRealTime();
}

// The shared object malloc resolves to in this process ("" when unknown).
std::string MallocOrigin() {
  Dl_info info{};
  void* (*fn)(size_t) = &std::malloc;
  if (dladdr(reinterpret_cast<void*>(fn), &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return path;
  return buf;
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool OriginMatches(const std::string& origin, const std::string& expected) {
  if (origin.empty()) return false;
  if (expected.find('/') != std::string::npos) return RealPath(origin) == RealPath(expected);
  return BaseName(origin).rfind(expected, 0) == 0 ||
         BaseName(RealPath(origin)).rfind(expected, 0) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  static constexpr char kExpectFlag[] = "--expect-malloc-from=";
  std::string expected_origin;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], kExpectFlag, sizeof(kExpectFlag) - 1) == 0) {
      expected_origin = argv[i] + sizeof(kExpectFlag) - 1;
    } else {
      if (std::strcmp(argv[i], "--help") == 0) {
        std::printf(
            "usage: micro-bench [--expect-malloc-from=LIB] [google-benchmark flags]\n"
            "micro-bench: allocator micro-benchmarks; run under LD_PRELOAD=<allocator.so>.\n"
            "  --expect-malloc-from=LIB  fail (exit 3) unless malloc comes from LIB\n\n");
      }
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  argv[argc] = nullptr;

  const std::string origin = MallocOrigin();
  if (!expected_origin.empty() && !OriginMatches(origin, expected_origin)) {
    std::fprintf(stderr, "micro-bench: malloc comes from '%s', expected '%s' (LD_PRELOAD=%s)\n",
                 origin.empty() ? "?" : origin.c_str(), expected_origin.c_str(),
                 std::getenv("LD_PRELOAD") ? std::getenv("LD_PRELOAD") : "");
    return 3;
  }

  RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    std::fprintf(stderr, "usage: micro-bench [--expect-malloc-from=LIB] [google-benchmark flags] "
                         "(--help lists them)\n");
    return 2;
  }
  benchmark::AddCustomContext("malloc_from", origin.empty() ? "?" : RealPath(origin));
  const char* preload = std::getenv("LD_PRELOAD");
  benchmark::AddCustomContext("ld_preload", preload ? preload : "");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
