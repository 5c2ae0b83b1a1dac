#include "entry/runtime.h"

#include <algorithm>
#include <cerrno>
#include <new>

#include "common/log.h"
#include "entry/allocate.h"
#include "entry/background.h"
#include "entry/fork_handlers.h"
#include "meshing/write_protect.h"
#include "platform/os.h"

namespace mesh {

__thread ThreadState t_thread __attribute__((tls_model("initial-exec"))) = {};
__thread bool t_allocFromBootstrap __attribute__((tls_model("initial-exec"))) = false;
// 0: no heap yet, 1: heap live, 2: heap torn down at thread exit.
static __thread uint8_t t_state __attribute__((tls_model("initial-exec"))) = 0;
static __thread bool t_initializing __attribute__((tls_model("initial-exec"))) = false;

alignas(Runtime) char g_runtimeStorage[sizeof(Runtime)];

// Adds an exiting thread heap's counters to the retired totals.
static void retireCounters(const ThreadHeap& th) {
  ThreadHeap::Totals t = th.totals();
  RetiredCounters& r = runtime().retired;
  r.allocs.fetch_add(t.allocs, std::memory_order_relaxed);
  r.frees.fetch_add(t.frees, std::memory_order_relaxed);
  r.bytes.fetch_add(t.bytes, std::memory_order_relaxed);
  r.sparseFrees.fetch_add(t.sparseFrees, std::memory_order_relaxed);
  runtime().heap.addLargeAllocs(t.largeAllocs);
}

// --- thread exit -----------------------------------------------------------------------------

static void onThreadExit(void* arg) {
  auto* th = static_cast<ThreadHeap*>(arg);
  Runtime& rt = runtime();
  flushAllFreed(th);
  DepthGuard depth;
  th->detachAll();
  setThreadHeap(nullptr);
  t_state = 2;
  LockGuard guard(rt.registryLock);
  retireThreadHeap(th);
}

void retireThreadHeap(ThreadHeap* th) MESH_NO_THREAD_SAFETY_ANALYSIS {
  Runtime& rt = runtime();
  if (th->registryPrev != nullptr) th->registryPrev->registryNext = th->registryNext;
  else rt.threads = th->registryNext;
  if (th->registryNext != nullptr) th->registryNext->registryPrev = th->registryPrev;
  retireCounters(*th);
  --rt.liveThreadHeaps;
  th->~ThreadHeap();
  rt.threadPool.release(th);
}

void waitWhileCacheClaimed() {
  int saved = errno;
  for (int v; (v = std::atomic_ref<int>(t_thread.claimed).load(std::memory_order_acquire)) != 0;) {
    os::futexWait(&t_thread.claimed, v);
  }
  errno = saved;
}

// --- start-up --------------------------------------------------------------------------------

static bool initialize() {
  Runtime* rt = new (g_runtimeStorage) Runtime;  // no value-init: nothing to zero
  rt->options.loadFromEnvironment();
  HeapConfig config;
  config.arena.maxBytes = static_cast<size_t>(rt->options.get(Opt::arena_gb)) << 30;
  config.arena.reserveBytes = std::min(config.arena.maxBytes, size_t{64} << 30);
  config.arena.maxDirtyBytes = static_cast<size_t>(rt->options.get(Opt::max_dirty_mb)) << 20;
  config.arena.useMemfd = rt->options.get(Opt::no_memfd) == 0;
  config.maxMapCount = rt->options.get(Opt::max_map_count);
  config.sameThreadMeshing = rt->options.get(Opt::same_thread_meshing) != 0;
  config.sparsePct = static_cast<uint32_t>(rt->options.get(Opt::sparse_pct));
  uint64_t salt = os::monotonicNs() ^ (reinterpret_cast<uintptr_t>(&config) << 16) ^
                  static_cast<uint64_t>(os::currentThreadId());
  config.freedKey = (salt * 0x9E3779B97F4A7C15ull) ^ (salt >> 29) ^ 0x6d65736866726565ull;
  if (!rt->heap.init(config)) return false;
  if (!os::createThreadExitKey(&rt->exitKey, onThreadExit)) return false;
  registerForkHandlers();
  background::onOptionsLoaded();
  wp::setEnabled(rt->options.get(Opt::uffd) != 0);
  return true;
}

// The write-protection service's test for whether the program still has threads (see
// wp::start): a heap is made for every thread that allocates.
static bool programAlive() {
  Runtime& rt = runtime();
  DepthGuard depth;
  LockGuard guard(rt.registryLock);
  return rt.liveThreadHeaps > 0;
}

void startWriteProtectService() {
  Runtime& rt = runtime();
  bool wanted = rt.options.get(Opt::uffd) != 0 && rt.options.get(Opt::period_ms) != 0;
  if (wanted && !wp::active()) wp::start(programAlive);
}

bool ensureInitialized() {
  Runtime& rt = runtime();
  int state = rt.initState.load(std::memory_order_acquire);
  if (MESH_LIKELY(state == 2)) return true;
  if (state == 3 || t_initializing) return false;
  int expected = 0;
  if (rt.initState.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    t_initializing = true;
    bool ok = initialize();
    t_initializing = false;
    rt.initState.store(ok ? 2 : 3, std::memory_order_release);
    if (!ok) warn("could not reserve an arena; every allocation will fail with ENOMEM");
    return ok;
  }
  while ((state = rt.initState.load(std::memory_order_acquire)) == 1) os::yieldThread();
  return state == 2;
}

ThreadHeap* currentThreadHeapSlow() {
  if (t_thread.heap != nullptr) return t_thread.heap;
  if (t_state == 2 || !ensureInitialized()) return nullptr;
  Runtime& rt = runtime();
  void* mem;
  {
    LockGuard guard(rt.registryLock);
    mem = rt.threadPool.allocate();
    if (mem == nullptr) return nullptr;
    uint64_t seed = os::monotonicNs() ^ (static_cast<uint64_t>(os::currentThreadId()) << 32) ^
                    reinterpret_cast<uintptr_t>(mem);
    auto* th = new (mem) ThreadHeap(&rt.heap, seed);
    th->registryNext = rt.threads;
    if (rt.threads != nullptr) rt.threads->registryPrev = th;
    rt.threads = th;
    ++rt.liveThreadHeaps;
    th->ownerState = &t_thread;
    setThreadHeap(th);
    t_state = 1;
  }
  // May allocate (second-level key storage); t_thread.heap is already set, so that works.
  if (!os::setThreadExitValue(rt.exitKey, t_thread.heap)) {
    // The heap will outlive the thread and its TLS: the background thread must not reach the
    // TLS through it (see ThreadState::claimed).
    DepthGuard depth;
    LockGuard guard(rt.registryLock);
    t_thread.heap->ownerState = nullptr;
  }
  return t_thread.heap;
}

void countInSharedCounters(bool alloc, size_t bytes) {
  RetiredCounters& r = runtime().retired;
  if (alloc) {
    r.allocs.fetch_add(1, std::memory_order_relaxed);
    r.bytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  } else {
    r.frees.fetch_add(1, std::memory_order_relaxed);
    r.bytes.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  }
}

}  // namespace mesh
