// Runtime: the one process-wide allocator instance behind the exported entry points. It owns the
// global heap, the options, the registry of thread heaps, start-up and thread exit. The
// bootstrap buffer for calls that arrive while we initialise is in entry/bootstrap.h, the fork
// handlers in entry/fork_handlers.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/compiler.h"
#include "common/lock.h"
#include "common/meta_memory.h"
#include "common/options.h"
#include "entry/bootstrap.h"
#include "global/global_heap.h"
#include "platform/os.h"
#include "thread/thread_heap.h"

namespace mesh {

struct RetiredCounters {
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> frees{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<uint64_t> sparseFrees{0};
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
  os::ThreadExitKey exitKey{};
  std::atomic<int> initState{0};  // 0 not started, 1 running, 2 ready, 3 failed
};

// Storage for the runtime: constructed in place on first use, never destroyed (other threads
// and atexit handlers may still call free while the process exits).
alignas(Runtime) extern char g_runtimeStorage[sizeof(Runtime)];
inline Runtime& runtime() { return *reinterpret_cast<Runtime*>(g_runtimeStorage); }
// Takes th, whose spans are detached, out of the registry and destroys it; its counters go to the
// retired totals. The caller holds registryLock (thread exit, fork child).
void retireThreadHeap(ThreadHeap* th);

// Thread-local state (initial-exec TLS: no allocation, no lazy TLS initialisation). One
// variable, so the fast paths find both fields through a single TLS offset.
struct ThreadState {
  // The fast paths' one test: the thread heap when they may use its cache right now (heap set,
  // lockedDepth == 0, not inside a fast path), else nullptr. A fast path clears it while it updates the
  // cache (FastPathMark), so a call nested in a signal handler that interrupts it sees nullptr
  // and takes a slow path that leaves the cache alone (cacheBusy()).
  ThreadHeap* fast = nullptr;
  ThreadHeap* heap = nullptr;
  // How many sections that may hold allocator locks (DepthGuard) this thread is in. A call
  // arriving with lockedSection() is nested in one (a signal handler) and must neither wait for
  // a lock nor use the thread cache.
  uint32_t lockedDepth = 0;
  // Set by the background thread while it returns this thread's cache on its behalf (the
  // thread went quiet, see background.cc). A thread that finds it set after clearing `fast`
  // leaves the cache alone (FastPathMark::usable) or waits for it to clear (enterLockedSection). The
  // background thread in turn sets it, runs os::barrierOnAllThreads() and only then reads
  // `fast`: either this thread sees the flag, or the background thread sees `fast` cleared and
  // leaves the cache alone (the fence the fast paths would need is the barrier's).
  // A plain int, so that the fast paths' test is one compare with memory; other threads and
  // the waiting loop access it through std::atomic_ref.
  int claimed = 0;
};
extern __thread ThreadState t_thread __attribute__((tls_model("initial-exec")));
inline bool lockedSection() { return t_thread.lockedDepth >= 1; }
// Waits until the background thread has returned this thread's cache (ThreadState::claimed);
// keeps errno. Async-signal-safe.
MESH_SLOW_PATH void waitWhileCacheClaimed();
// Called with `fast` just cleared: the cache may be used once this returns.
MESH_FAST_PATH void awaitCacheUnclaimed() {
  if (MESH_UNLIKELY(t_thread.claimed != 0)) waitWhileCacheClaimed();
}
// Set while this thread creates the background thread (from the free path, in a locked
// section): what pthread_create allocates (the new thread's TLS vector) comes from the bootstrap
// buffer, not from the heap, so starting the thread in the middle of a free hands out no block
// that was just freed (a double free of it would go unseen) and moves no statistic.
extern __thread bool t_allocFromBootstrap __attribute__((tls_model("initial-exec")));
// A signal handler interrupted a fast path of this thread, which is mid-update of the cache.
// (Also true for the instant between the end of a locked section and fast being set again:
// such a call then merely avoids the cache.)
inline bool cacheBusy() { return t_thread.fast == nullptr && t_thread.lockedDepth == 0 && t_thread.heap != nullptr; }
// Nested in our own code in any way: in a locked section or in a fast path.
inline bool nestedCall() { return t_thread.lockedDepth != 0 || cacheBusy(); }
// Sets this thread's heap (nullptr: none, or torn down).
inline void setThreadHeap(ThreadHeap* th) {
  t_thread.heap = th;
  t_thread.fast = t_thread.lockedDepth == 0 ? th : nullptr;
}
// A section that may hold allocator locks (DepthGuard, fork handlers). Returns whether the
// section began inside a signal handler that interrupted a fast path of this thread: then
// leaving it must not open the cache again (pass the value to leaveLockedSection). The order
// makes every interruption safe: before fast is cleared a handler may still use the cache (we
// have not touched anything yet); after lockedDepth drops to 0 and before fast is set, it avoids the
// cache.
inline bool enterLockedSection() {
  bool interrupted = cacheBusy();
  t_thread.lockedDepth += 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_thread.fast = nullptr;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  awaitCacheUnclaimed();
  return interrupted;
}
inline void leaveLockedSection(bool interrupted) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_thread.lockedDepth -= 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (t_thread.lockedDepth == 0 && !interrupted) t_thread.fast = t_thread.heap;
}

class DepthGuard {
 public:
  DepthGuard() : interrupted_(enterLockedSection()) {}
  ~DepthGuard() { leaveLockedSection(interrupted_); }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  bool interrupted_;
};

// True once the heap is usable. Initialises on first call; false while initialisation runs on
// this thread (re-entry) or when it failed.
bool ensureInitialized();
// Starts the userfaultfd write-protection service (meshing/write_protect.h) unless MESH_UFFD=0,
// meshing is off, or it runs. Call with no allocator lock held: it may allocate.
void startWriteProtectService();
// This thread's heap, creating it; nullptr after the thread's heap was torn down (exiting
// thread) or when no memory is left.
ThreadHeap* currentThreadHeapSlow();
// Counts an allocation or a free in the process-wide counters (allocs, frees, bytes in use):
// every large block, and the small ones no thread heap counts (served without one).
void countInSharedCounters(bool alloc, size_t bytes);

}  // namespace mesh
