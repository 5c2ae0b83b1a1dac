#include "entry/runtime.h"

#include <algorithm>
#include <new>

#include "arena/write_protect.h"
#include "common/log.h"
#include "entry/allocate.h"
#include "entry/background.h"
#include "global/write_barrier.h"
#include "platform/os.h"

namespace mesh {

__thread ThreadState t_thread __attribute__((tls_model("initial-exec"))) = {};
__thread bool t_allocFromBootstrap __attribute__((tls_model("initial-exec"))) = false;
// 0: no heap yet, 1: heap live, 2: heap torn down at thread exit.
static __thread uint8_t t_state __attribute__((tls_model("initial-exec"))) = 0;
static __thread bool t_initializing __attribute__((tls_model("initial-exec"))) = false;

alignas(Runtime) char g_runtimeStorage[sizeof(Runtime)];

// Zero-initialised static storage: its pages cost nothing until used.
static BootstrapBuffer g_bootstrap;
BootstrapBuffer& bootstrap() { return g_bootstrap; }

// --- bootstrap buffer ------------------------------------------------------------------------

void* BootstrapBuffer::alloc(size_t n, size_t align) {
  if (align < 16) align = 16;
  if (align > 4096) return nullptr;
  if (n > kMaxSmallSize) {
    void* p = allocMapped(n, align);
    if (p != nullptr || n > kBytes) return p;
  }
  size_t need = (n + 15) / 16 * 16;
  if (n <= kMaxSmallSize && align == 16) {
    int cls = classForSize(n);
    need = sizeClass(cls).size;
    if (freeLockTry()) {
      void* p = freeLists_[cls];
      if (p != nullptr) freeLists_[cls] = *static_cast<void**>(p);
      freeLock_.unlock();
      if (p != nullptr) return p;
    }
  }
  size_t old = used_.load(std::memory_order_relaxed);
  for (;;) {
    size_t start = (old + 16 + align - 1) & ~(align - 1);  // 16 bytes for the size header
    if (start + need > kBytes) return nullptr;
    if (used_.compare_exchange_weak(old, start + need, std::memory_order_relaxed)) {
      reinterpret_cast<size_t*>(buf_ + start)[-1] = need;
      return buf_ + start;
    }
  }
}

bool BootstrapBuffer::freeLockTry() { return freeLock_.tryLockBounded(); }

// A block of its own mapping: the usable size sits in the word before it (as for buffer blocks)
// and the block's offset from the mapping's start in the word before that.
void* BootstrapBuffer::allocMapped(size_t n, size_t align) {
  size_t offset = align < 16 ? 16 : align;
  size_t need = (n + 15) / 16 * 16;
  if (need < n || need > (size_t{1} << 46)) return nullptr;
  size_t len = (offset + need + os::kPageSize - 1) & ~(os::kPageSize - 1);
  for (int i = 0; i < kMaxMapped; ++i) {
    void* none = nullptr;
    // Claim the entry with a marker first, so no other call can take it while we map.
    void* claim = reinterpret_cast<void*>(uintptr_t{1});
    if (mapped_[i].load(std::memory_order_relaxed) != nullptr ||
        !mapped_[i].compare_exchange_strong(none, claim, std::memory_order_acq_rel)) {
      continue;
    }
    char* base = static_cast<char*>(os::mapAnonymous(len));
    if (base == nullptr) {
      mapped_[i].store(nullptr, std::memory_order_release);
      return nullptr;
    }
    char* block = base + offset;
    reinterpret_cast<size_t*>(block)[-1] = need;
    reinterpret_cast<size_t*>(block)[-2] = offset;
    mappedCount_.fetch_add(1, std::memory_order_acq_rel);
    mapped_[i].store(block, std::memory_order_release);
    return block;
  }
  return nullptr;  // table full: the caller falls back to the buffer
}

int BootstrapBuffer::findMapped(const void* p) const {
  for (int i = 0; i < kMaxMapped; ++i) {
    if (mapped_[i].load(std::memory_order_acquire) == p) return i;
  }
  return -1;
}

void BootstrapBuffer::release(void* p) {
  int i = findMapped(p);
  if (i >= 0) {
    void* expected = p;
    // Only one free of a block can win the entry; a second (a double free) finds it gone.
    if (!mapped_[i].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel)) return;
    mappedCount_.fetch_sub(1, std::memory_order_acq_rel);
    size_t need = usableSize(p);
    size_t offset = reinterpret_cast<const size_t*>(p)[-2];
    char* base = static_cast<char*>(p) - offset;
    os::unmap(base, (offset + need + os::kPageSize - 1) & ~(os::kPageSize - 1));
    return;
  }
  size_t size = usableSize(p);
  if (size > kMaxSmallSize) return;  // kept: large bootstrap blocks are rare
  int cls = classForSize(size);
  if (sizeClass(cls).size != size || !freeLockTry()) return;  // leaked rather than blocking
  *static_cast<void**>(p) = freeLists_[cls];
  freeLists_[cls] = p;
  freeLock_.unlock();
}

size_t BootstrapBuffer::usableSize(const void* p) const {
  return reinterpret_cast<const size_t*>(p)[-1];
}

// Adds an exiting thread heap's counters to the retired totals.
static void retireCounters(const ThreadHeap& th) {
  ThreadHeap::Totals t = th.totals();
  RetiredCounters& r = runtime().retired;
  r.allocs.fetch_add(t.allocs, std::memory_order_relaxed);
  r.frees.fetch_add(t.frees, std::memory_order_relaxed);
  r.bytes.fetch_add(t.bytes, std::memory_order_relaxed);
  runtime().heap.addLargeAllocs(t.largeAllocs);
}

// --- fork ------------------------------------------------------------------------------------

// Whether the fork's prepare handler ran in a signal handler that interrupted a fast path.
static __thread bool t_forkInterrupted __attribute__((tls_model("initial-exec"))) = false;
// Whether prepareFork could give the child private copies of the meshed spans.
static bool g_forkSafe = true;

bool reserveForkFile() {
  Runtime& rt = runtime();
  if (rt.initState.load(std::memory_order_acquire) != 2) return true;
  return rt.heap.reserveForkFile();
}

static void forkPrepare() MESH_NO_THREAD_SAFETY_ANALYSIS {
  Runtime& rt = runtime();
  t_forkInterrupted = enterLockedSection();
  rt.registryLock.lock();
  rt.heap.lockAll();
  // The meshed spans' data is copied for the child now (see global/fork.cc).
  g_forkSafe = rt.heap.prepareFork();
}

static void forkParent() MESH_NO_THREAD_SAFETY_ANALYSIS {
  Runtime& rt = runtime();
  rt.heap.finishForkInParent();
  rt.heap.unlockAll();
  rt.registryLock.unlock();
  leaveLockedSection(t_forkInterrupted);
}

static void forkChild() MESH_NO_THREAD_SAFETY_ANALYSIS {
  os::forgetProcessId();
  Runtime& rt = runtime();
  barrier::afterForkInChild();
  // Sharing the meshed pages with the parent would let each change the other's objects: a
  // child that cannot have its own copy stops before it runs any of the program's code. (Only
  // a fork that does not go through fork() itself, e.g. daemon(), can get here: fork() fails
  // with ENOMEM instead; see the wrapper in interpose.cc.)
  if (!g_forkSafe) {
    LineBuffer line;
    line.add("mesh: fork: no memory for the child's copy of the meshed heap; the child exits with 127\n");
    line.writeTo(2);
    os::exitNow(127);
  }
  if (!rt.heap.finishForkInChild()) {
    fatal("fork: could not map the child's copy of the meshed heap");
  }
  rt.registryLock.resetAfterFork();
  // Only this thread survives in the child: give back the spans other threads had attached.
  ThreadHeap* th = rt.threads;
  while (th != nullptr) {
    ThreadHeap* next = th->registryNext;
    if (th != t_thread.heap) {
      th->dropFreed();  // possibly mid-update when the fork happened
      th->dropLarge();
      th->detachAll();
      if (th->registryPrev != nullptr) th->registryPrev->registryNext = th->registryNext;
      else rt.threads = th->registryNext;
      if (th->registryNext != nullptr) th->registryNext->registryPrev = th->registryPrev;
      retireCounters(*th);
      --rt.liveThreadHeaps;
      th->~ThreadHeap();
      rt.threadPool.release(th);
    }
    th = next;
  }
  leaveLockedSection(t_forkInterrupted);
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
  if (th->registryPrev != nullptr) th->registryPrev->registryNext = th->registryNext;
  else rt.threads = th->registryNext;
  if (th->registryNext != nullptr) th->registryNext->registryPrev = th->registryPrev;
  retireCounters(*th);
  --rt.liveThreadHeaps;
  th->~ThreadHeap();
  rt.threadPool.release(th);
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
  uint64_t salt = os::monotonicNs() ^ (reinterpret_cast<uintptr_t>(&config) << 16) ^
                  static_cast<uint64_t>(os::currentThreadId());
  config.freedKey = (salt * 0x9E3779B97F4A7C15ull) ^ (salt >> 29) ^ 0x6d65736866726565ull;
  if (!rt->heap.init(config)) return false;
  if (!os::createThreadExitKey(&rt->exitKey, onThreadExit)) return false;
  os::registerForkHandlers(forkPrepare, forkParent, forkChild);
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
    setThreadHeap(th);
    t_state = 1;
  }
  // May allocate (second-level key storage); t_thread.heap is already set, so that works.
  os::setThreadExitValue(rt.exitKey, t_thread.heap);
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
