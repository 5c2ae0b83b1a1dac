// Runtime: the one process-wide allocator instance behind the exported entry points. It owns the
// global heap, the options, the registry of thread heaps, start-up (including the bootstrap
// buffer for calls that arrive while we initialise), thread exit and fork.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/compiler.h"
#include "common/lock.h"
#include "common/meta_memory.h"
#include "common/options.h"
#include "global/global_heap.h"
#include "thread/thread_heap.h"

namespace mesh {

// A bump allocator over static memory for the calls we cannot route through the heap:
// allocations while the heap is being initialised (dlsym, pthread_atfork may calloc) and
// allocations nested inside our own locked sections (a signal handler interrupting us). Blocks
// of small sizes are rounded to a size class and reused through per-class free lists; their
// lock is only ever tried (bounded), never waited for, so a handler cannot deadlock on it.
// Larger blocks get a private mapping of their own (mmap is async-signal-safe), recorded in a
// lock-free table and unmapped when freed, so handlers that allocate large blocks now and then
// cannot use up the static buffer; only when that table is full do they come from the buffer
// (and are then never reused).
class BootstrapBuffer {
 public:
  void* alloc(size_t n, size_t align);
  void release(void* p);
  bool contains(const void* p) const {
    if (static_cast<size_t>(static_cast<const char*>(p) - buf_) < kBytes) return true;
    return mappedCount_.load(std::memory_order_acquire) != 0 && findMapped(p) >= 0;
  }
  size_t usableSize(const void* p) const;

 private:
  bool freeLockTry() MESH_TRY_ACQUIRE(true, freeLock_);
  void* allocMapped(size_t n, size_t align);
  int findMapped(const void* p) const;

  static constexpr size_t kBytes = size_t{16} << 20;
  static constexpr int kMaxMapped = 64;
  alignas(4096) char buf_[kBytes];
  std::atomic<size_t> used_;
  Mutex freeLock_;
  void* freeLists_[kNumClasses];  // zero-initialised static storage
  // Blocks with a mapping of their own (nullptr: free entry), and how many there are.
  std::atomic<void*> mapped_[kMaxMapped];
  std::atomic<int> mappedCount_;
};

struct RetiredCounters {
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> frees{0};
  std::atomic<int64_t> bytes{0};
};

class Runtime {
 public:
  GlobalHeap heap;
  Options options;
  RetiredCounters retired;   // counters of exited threads and of calls without a thread heap
  Mutex registryLock;
  ThreadHeap* threads MESH_GUARDED_BY(registryLock) = nullptr;
  MetaPool<ThreadHeap> threadPool MESH_GUARDED_BY(registryLock);
  uint64_t liveThreadHeaps MESH_GUARDED_BY(registryLock) = 0;
  pthread_key_t exitKey{};
  int forkPipe[2] = {-1, -1};
  std::atomic<int> initState{0};  // 0 not started, 1 running, 2 ready, 3 failed
};

// Storage for the runtime: constructed in place on first use, never destroyed (other threads
// and atexit handlers may still call free while the process exits).
alignas(Runtime) extern char g_runtimeStorage[sizeof(Runtime)];
inline Runtime& runtime() { return *reinterpret_cast<Runtime*>(g_runtimeStorage); }
BootstrapBuffer& bootstrap();

// Thread-local state (initial-exec TLS: no allocation, no lazy TLS initialisation). One
// variable, so the fast paths find both fields through a single TLS offset.
struct ThreadState {
  ThreadHeap* heap = nullptr;
  // What this thread is doing inside the allocator, for calls nested in a signal handler:
  //   bit 0      inside the thread-cache fast path (the cache is mid-update; no lock is held)
  //   bits 1..   depth of sections that may hold allocator locks (DepthGuard)
  // A call arriving with busy != 0 is nested and must not use the thread cache; with
  // lockedSection() it must not wait for a lock either.
  uint32_t busy = 0;
};
extern __thread ThreadState t_thread __attribute__((tls_model("initial-exec")));
inline bool lockedSection() { return t_thread.busy >= 2; }
inline bool cacheBusy() { return (t_thread.busy & 1) != 0; }

class DepthGuard {
 public:
  DepthGuard() { t_thread.busy += 2; }
  ~DepthGuard() { t_thread.busy -= 2; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
};

// True once the heap is usable. Initialises on first call; false while initialisation runs on
// this thread (re-entry) or when it failed.
bool ensureInitialized();
// This thread's heap, creating it; nullptr after the thread's heap was torn down (exiting
// thread) or when no memory is left.
ThreadHeap* currentThreadHeapSlow();
// Counters for calls served without a thread heap.
void countWithoutThreadHeap(bool alloc, size_t bytes);

}  // namespace mesh
