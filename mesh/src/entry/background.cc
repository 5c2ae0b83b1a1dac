#include "entry/background.h"


#include <atomic>
#include <cerrno>

#include "common/lock.h"
#include "common/log.h"
#include "entry/allocate.h"
#include "entry/runtime.h"
#include "entry/stats_report.h"
#include "meshing/pacing.h"
#include "meshing/write_protect.h"
#include "platform/os.h"

namespace mesh::background {
namespace {

// What the thread is asked to do (bits of g_requests).
constexpr int kSummaryReport = 1;   // SIGUSR1
constexpr int kDetailedReport = 2;  // SIGUSR2
constexpr int kRelease = 4;         // the arena holds pages to return (MESH_FREEPHYS_THREAD)
constexpr int kActivity = 8;        // the application frees again: end the idle back-off

// MESH_BACKGROUND_THREAD values.
constexpr long kOff = 0;
constexpr long kOn = 1;    // started by the first slow frees; SIGUSR1/SIGUSR2 reports
constexpr long kAuto = 2;  // the default: started once the heap has memory worth giving back

constexpr uint64_t kMs = 1000000;
constexpr uint64_t kMaxSleepNs = 1000 * kMs;  // the thread looks at its options at least this often
constexpr unsigned kMaxIdleShift = 4;          // idle back-off: up to 16 periods (at most 1 s)
// kAuto starts the thread once this much could be given back: free bytes in partly used spans
// that meshing works on, plus freed pages the arena keeps. A program that allocates little
// never gets there.
constexpr uint64_t kAutoStartBytes = uint64_t{4} << 20;
constexpr uint64_t kJobSliceNs = 5 * kMs;  // meshing handed to the write-protection service at once

// pid of the process in which the thread runs, 0 when it runs nowhere. A fork child inherits the
// parent's value: the child handler clears it, and comparing with getpid() covers whatever runs
// in the child before that handler.
std::atomic<int> g_threadPid{0};
// pid of the process in which some thread is starting the service thread: a start lock that a
// fork child recognises as stale.
std::atomic<int> g_startingPid{0};
std::atomic<bool> g_startFailed{false};
std::atomic<int> g_wake{0};  // futex word the thread sleeps on; bumped with every request
std::atomic<int> g_requests{0};
std::atomic<bool> g_idle{false};     // the thread backs off; the next slow frees wake it
// Counts the application's slow-free rounds (onSlowFrees calls) while the thread runs. With the
// heap's refill count (spans attached to threads) it tells a round of the thread whether the
// application is still at work: a server that frees into and allocates from its thread cache
// calls the slow free path rarely, but refills all the time. Only a round that sees neither
// change meshes for its whole period.
std::atomic<uint32_t> g_freeRounds{0};
std::atomic<bool> g_exiting{false};  // exit() has begun: the thread does no more work
std::atomic<bool> g_appClaimed[2] = {};  // SIGUSR1, SIGUSR2: the application chose a disposition
std::atomic<bool> g_handlersInstalled{false};
// Orders our check-and-install of a report handler against an application's sigaction().
Mutex g_signalLock;

// Async-signal-safe (atomics and a futex wake).
void request(int bits) {
  g_requests.fetch_or(bits, std::memory_order_acq_rel);
  g_wake.fetch_add(1, std::memory_order_acq_rel);
  os::futexWakeAll(reinterpret_cast<const int*>(&g_wake));
}

bool runningHere() {
  int pid = g_threadPid.load(std::memory_order_acquire);
  return pid != 0 && pid == os::processId();
}

void onReportSignal(int sig) {
  int saved = errno;
  request(sig == SIGUSR1 ? kSummaryReport : kDetailedReport);
  errno = saved;
}

// The arena's release hook (MESH_FREEPHYS_THREAD), called under the arena lock by a free that
// would return pages to the OS. False (release inline after all) when no thread can do it.
bool releaseOnServiceThread() {
  if (g_exiting.load(std::memory_order_relaxed) || !runningHere() ||
      runtime().options.get(Opt::freephys_thread) == 0) {
    return false;
  }
  if ((g_requests.load(std::memory_order_relaxed) & kRelease) == 0) request(kRelease);
  return true;
}

// Installs the report handlers for the signals the application has not claimed and that still
// have their default action (an inherited SIG_IGN or a handler set before we got here wins).
void installReportHandlers() MESH_NO_THREAD_SAFETY_ANALYSIS {
  if (g_handlersInstalled.exchange(true, std::memory_order_relaxed)) return;
  const int sigs[2] = {SIGUSR1, SIGUSR2};
  for (int i = 0; i < 2; ++i) {
    LockGuard guard(g_signalLock);
    if (g_appClaimed[i].load(std::memory_order_relaxed)) continue;
    struct sigaction old {};
    if (os::libcSigaction(sigs[i], nullptr, &old) != 0) continue;
    if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction act {};
    act.sa_handler = onReportSignal;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    os::libcSigaction(sigs[i], &act, nullptr);
  }
}

void printSignalReport(int sig, int level) {
  LineBuffer line;
  line.add("mesh: statistics of pid ").addI(os::processId());
  line.add(sig == SIGUSR1 ? " (SIGUSR1)\n" : " (SIGUSR2)\n").writeTo(2);
  printReport(2, level);
}

// A round's meshing, on the write-protection service's thread when it runs (so that system
// calls writing into a span being meshed wait instead of failing), else here. Handed over in
// slices: a mesh_compact() waiting for the service ends the round (it will mesh what is left),
// rather than waiting for the whole of it.
size_t meshPacedOnService(Runtime& rt, uint64_t budget) {
  struct Job {
    Runtime* rt;
    uint64_t budget;
    size_t meshes;
  };
  auto run = [](void* p) {
    auto* j = static_cast<Job*>(p);
    DepthGuard depth;
    j->meshes = j->rt->heap.mesher().meshPaced(j->budget, true);
  };
  uint64_t start = os::monotonicNs();
  size_t total = 0;
  for (uint64_t used = 0; used < budget; used = os::monotonicNs() - start) {
    Job job{&rt, budget - used < kJobSliceNs ? budget - used : kJobSliceNs, 0};
    if (!wp::run(run, &job)) {
      job.budget = budget - used;
      run(&job);
      return total + job.meshes;
    }
    total += job.meshes;
    // A slice that ended before its time found nothing left to try.
    bool exhausted = os::monotonicNs() - start - used < job.budget;
    if (exhausted || wp::waiting()) break;
  }
  return total;
}

// --- caches of quiet threads ------------------------------------------------------------------
// A thread's cache holds free objects (freed stacks, its attached spans' free slots, kept large
// blocks) that only the thread itself hands out or gives back, on its own malloc and free
// calls. A thread that stops calling them (a pool worker waiting for work, a thread blocked on
// input) would keep them for as long as it sleeps: stacked objects count as live, so their spans
// can never be released, and attached spans are never meshed. After MESH_QUIET_THREAD_MS
// without a call, this thread returns such a cache on its owner's behalf.
//
// The owner's cache has no lock: the fast paths update it with plain loads and stores. The
// handshake (ThreadState::claimed): set the owner's claimed flag; a process-wide barrier
// (os::barrierOnAllThreads); read the owner's `fast`. Every call of the owner clears `fast`
// before it touches the cache and then reads claimed (FastPathMark, enterLockedSection). If the
// owner read claimed before the barrier, its cleared `fast` is visible after it, and we leave
// the cache alone; if after, it sees the flag and waits until we clear it. So a `fast` that
// reads non-null means the owner is outside our code and stays out until the flag clears.

std::atomic<uint64_t> g_quietReturns{0};

void releaseCache(ThreadState* owner) {
  std::atomic_ref<int>(owner->claimed).store(0, std::memory_order_release);
  os::futexWakeAll(&owner->claimed);
}

// True when the owner is outside our code and will wait at its next call until releaseCache.
bool claimCache(ThreadState* owner) {
  std::atomic_ref<int>(owner->claimed).store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (os::barrierOnAllThreads()) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (std::atomic_ref<ThreadHeap*>(owner->fast).load(std::memory_order_acquire) != nullptr) return true;
  }
  releaseCache(owner);
  return false;
}

// Returns the caches of threads that have made no malloc or free call for quietNs (measured
// between this function's calls: a heap's activity is its allocation and free counts), once
// per quiet spell; all: every other thread's cache now, whatever its activity (tests).
struct CacheReturns {
  size_t returned = 0;
  size_t busy = 0;  // claims given up: the owner was inside the allocator
};

CacheReturns returnCaches(Runtime& rt, uint64_t now, uint64_t quietNs, bool all) {
  CacheReturns r;
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer cannot see the barrier that orders the handshake and would report the
  // owner's plain stores as races.
  (void)rt, (void)now, (void)quietNs, (void)all;
#else
  DepthGuard depth;
  LockGuard guard(rt.registryLock);
  for (ThreadHeap* th = rt.threads; th != nullptr; th = th->registryNext) {
    if (th == t_thread.heap || th->ownerState == nullptr) continue;
    ThreadHeap::Totals t = th->totals();
    if (!all) {
      uint64_t activity = t.allocs + t.frees;
      if (activity != th->quietActivity || th->quietSinceNs == 0) {
        th->quietActivity = activity;
        th->quietSinceNs = now;
        th->quietReturned = false;
        continue;
      }
      if (th->quietReturned || now - th->quietSinceNs < quietNs || t.cachedBytes == 0) continue;
    }
    auto* owner = static_cast<ThreadState*>(th->ownerState);
    if (!claimCache(owner)) {
      ++r.busy;
      continue;
    }
    frontend().returnCache(th);  // leaves the activity as it was (objects move, none is made)
    releaseCache(owner);
    th->quietReturned = true;
    ++r.returned;
  }
  g_quietReturns.fetch_add(r.returned, std::memory_order_relaxed);
#endif
  return r;
}

// Whether the program's own threads used half a core or more since the last call
// (pacing::programBusy): the process's CPU time less that of this thread and of the
// write-protection service (which runs the meshes). A program that mostly waits (a lightly
// loaded server) can be meshed at full pace.
class ProgramLoad {
 public:
  ProgramLoad() : last_(read()) {}
  bool busySinceLastCall() {
    pacing::Clocks now = read();
    bool busy = pacing::programBusy(last_, now);
    last_ = now;
    return busy;
  }

 private:
  static pacing::Clocks read() { return {os::monotonicNs(), os::processCpuNs(), os::threadCpuNs() + wp::cpuNs()}; }
  pacing::Clocks last_;
};

// One period's work: queued remote frees folded (so emptied spans are released and the
// meshable-free counts are current), bounded mesh steps for as long as the gain warrants, then
// the decay of free pages. quiet: the application has not freed since the last round, so the
// round may mesh for its whole period (between steps the thread yields, and holds no lock);
// programBusy: its threads kept half a core busy (ProgramLoad), so the round meshes half as long.
// True when it achieved anything or work is left (no back-off); *dirty: free pages are kept
// (a later decay pass may return them).
bool tick(Runtime& rt, uint64_t meshPeriodNs, uint64_t decayNs, uint64_t quietThreadNs, bool quiet, bool programBusy, bool* dirty) {
  // First, so that what the caches held is meshed or returned in this round.
  size_t caches = quietThreadNs > 0 ? returnCaches(rt, os::monotonicNs(), quietThreadNs, false).returned : 0;
  DepthGuard depth;
  rt.heap.drainAll();
  size_t meshes = 0;
  Mesher& mesher = rt.heap.mesher();
  uint64_t gain = meshPeriodNs > 0 ? mesher.meshGainBytes() : 0;
  // How long: pacing::roundBudgetNs (a share of the period that grows with the gain, half as much
  // while the program keeps a CPU busy, all of it once it stopped using the slow paths).
  uint64_t budget = pacing::roundBudgetNs({meshPeriodNs, gain, quiet, programBusy});
  if (budget > 0) meshes = meshPacedOnService(rt, budget);
  size_t released = rt.heap.maybeDecay(decayNs, meshPeriodNs > 0 ? meshPeriodNs / 5 : 20 * kMs);
  *dirty = decayNs > 0 && rt.heap.arena().stats().dirtyBytes > 0;
  return caches > 0 || meshes > 0 || released > 0 || (gain > 0 && mesher.meshGainBytes() > 0);
}

// No application thread with a heap is left: main() called pthread_exit() and the others have
// ended. glibc ends the process when its last thread exits, so we must not be that thread.
bool applicationGone(Runtime& rt) {
  DepthGuard depth;
  LockGuard guard(rt.registryLock);
  return rt.liveThreadHeaps == (t_thread.heap != nullptr ? 1u : 0u);
}

void* serviceMain(void*) {
  os::nameThisThread("mesh-bg");
  Runtime& rt = runtime();
  uint64_t lastTick = 0, nextTick = os::monotonicNs();
  unsigned idleShift = 0;
  auto activity = [&rt] { return g_freeRounds.load(std::memory_order_relaxed) + rt.heap.refillCount(); };
  uint64_t roundsSeen = activity();
  ProgramLoad load;
  for (;;) {
    int seen = g_wake.load(std::memory_order_acquire);
    int req = g_requests.exchange(0, std::memory_order_acq_rel);
    long mode = rt.options.get(Opt::background_thread);
    bool meshing = mode != kOff;  // the thread paces meshing and decay (the free path does not)
    bool freephys = rt.options.get(Opt::freephys_thread) != 0;
    rt.heap.arena().setReleaseHook(freephys ? releaseOnServiceThread : nullptr);
    long periodMs = rt.options.get(Opt::period_ms);
    uint64_t period = static_cast<uint64_t>(periodMs > 0 ? periodMs : 1000) * kMs;
    uint64_t decay = static_cast<uint64_t>(rt.options.get(Opt::decay_ms)) * kMs;
    uint64_t now = os::monotonicNs();
    if (!g_exiting.load(std::memory_order_relaxed)) {
      if (mode == kOn) installReportHandlers();
      if ((req & kRelease) != 0) {
        DepthGuard depth;
        rt.heap.arena().releaseDirty();
      }
      if (!meshing && freephys) {
        // No rounds (the free path meshes), but unused free pages are still returned here.
        DepthGuard depth;
        rt.heap.maybeDecay(decay);
      }
      if ((req & kSummaryReport) != 0) printSignalReport(SIGUSR1, 1);
      if ((req & kDetailedReport) != 0) printSignalReport(SIGUSR2, 2);
      if ((req & kActivity) != 0 && idleShift > 0) {
        idleShift = 0;
        nextTick = lastTick + period;
      }
      if (meshing && now >= nextTick) {
        uint64_t rounds = activity();
        bool dirty = false;
        uint64_t quietThread = static_cast<uint64_t>(rt.options.get(Opt::quiet_thread_ms)) * kMs;
        bool worked = tick(rt, periodMs > 0 ? period : 0, decay, quietThread, rounds == roundsSeen,
                           load.busySinceLastCall(), &dirty);
        roundsSeen = rounds;
        idleShift = worked ? 0 : (idleShift < kMaxIdleShift ? idleShift + 1 : idleShift);
        // Rounds start a period apart (a busy round that meshed for its whole period is
        // followed by the next at once); idle ones further apart, but while free pages are
        // kept, no further than the next decay pass.
        lastTick = now;
        now = os::monotonicNs();
        uint64_t interval = period << idleShift;
        uint64_t cap = period > kMaxSleepNs ? period : kMaxSleepNs;
        if (dirty && decay / 2 < cap) cap = decay / 2 > period ? decay / 2 : period;
        nextTick = lastTick + (interval < cap ? interval : cap);
        g_idle.store(idleShift > 0, std::memory_order_relaxed);
      }
      if (applicationGone(rt)) break;
    }
    uint64_t wait = kMaxSleepNs;
    if (meshing && !g_exiting.load(std::memory_order_relaxed)) {
      wait = nextTick <= now ? 1 : (nextTick - now < wait ? nextTick - now : wait);
    }
    os::futexWaitFor(reinterpret_cast<const int*>(&g_wake), seen, wait);
  }
  // Exiting: frees release memory themselves again, and a later slow free may start a new thread.
  rt.heap.arena().setReleaseHook(nullptr);
  int me = os::processId();
  g_threadPid.compare_exchange_strong(me, 0, std::memory_order_acq_rel);
  return nullptr;
}

// Starts the thread unless it runs in this process or another thread is starting it. Only a
// thread with a heap starts it (see applicationGone: it would exit again at once otherwise).
// asked: an option asked for the thread (a failure is worth a warning), not the default.
void start(bool asked) {
  if (g_startFailed.load(std::memory_order_relaxed) || t_thread.heap == nullptr) return;
  int me = os::processId();
  int holder = g_startingPid.load(std::memory_order_acquire);
  if (holder == me || !g_startingPid.compare_exchange_strong(holder, me, std::memory_order_acq_rel)) return;
  if (g_threadPid.load(std::memory_order_acquire) != me) {
    // Published before the thread exists: the thread's own exit resets it (never the reverse).
    g_threadPid.store(me, std::memory_order_release);
    t_allocFromBootstrap = true;
    // The thread's meshes run on the write-protection service (see meshPacedOnService): started
    // first (start returns once it is ready), so the first round already uses it, and when this
    // call returns both threads exist and have their names.
    startWriteProtectService();
    bool started = os::startDaemonThread(serviceMain, nullptr);
    t_allocFromBootstrap = false;
    if (!started) {
      g_threadPid.store(0, std::memory_order_release);
      g_startFailed.store(true, std::memory_order_relaxed);
      if (asked) warn("could not start the background thread; meshing and page release stay on the free path");
    }
  }
  g_startingPid.store(0, std::memory_order_release);
}

// fork child: the thread did not come along. Frees release memory themselves until a slow free
// of the child starts a new thread. The report handlers stay installed; a signal that arrives
// before the new thread is printed by it.
void afterForkInChild() {
  os::forgetProcessId();
  wp::afterForkInChild();
  g_threadPid.store(0, std::memory_order_relaxed);
  g_startingPid.store(0, std::memory_order_relaxed);
  g_idle.store(false, std::memory_order_relaxed);
  g_requests.fetch_and(~(kRelease | kActivity), std::memory_order_relaxed);
  g_signalLock.resetAfterFork();
  if (runtime().initState.load(std::memory_order_acquire) == 2) runtime().heap.arena().setReleaseHook(nullptr);
}

// Registering costs nothing when the options are off; doing it here rather than when the thread
// starts keeps pthread_atfork (os::registerForkHandlers, which takes glibc's fork-handler lock) off the free path, where it
// could run inside another library's fork handler and deadlock.
__attribute__((constructor)) void registerForkHandler() { os::registerForkHandlers(nullptr, nullptr, afterForkInChild); }

__attribute__((destructor)) void stopAtExit() { g_exiting.store(true, std::memory_order_relaxed); }

// kAuto: whether the heap holds enough memory that the thread could give back (meshing or
// decay) to be worth a thread.
bool worthAThread(Runtime& rt) {
  bool meshes = rt.options.get(Opt::period_ms) > 0;
  bool decays = rt.options.get(Opt::decay_ms) > 0;
  uint64_t bytes = (meshes ? rt.heap.mesher().meshableFreeBytes() : 0) + (decays ? rt.heap.arena().stats().dirtyBytes : 0);
  return bytes >= kAutoStartBytes;
}

}  // namespace

void onOptionsLoaded() {
  // Only the eager mode (1) answers SIGUSR1/SIGUSR2; the default (2) leaves both signals alone.
  if (runtime().options.get(Opt::background_thread) == kOn) installReportHandlers();
}

int onSlowFrees() {
  Runtime& rt = runtime();
  long mode = rt.options.get(Opt::background_thread);
  bool meshing = mode != kOff;
  bool freephys = rt.options.get(Opt::freephys_thread) != 0;
  if ((!meshing && !freephys) || g_exiting.load(std::memory_order_relaxed)) return 0;
  if (!runningHere()) {
    if (mode == kOn || freephys) start(true);
    else if (mode == kAuto && worthAThread(rt)) start(false);
    // By default the free path does not mesh either: below kAutoStartBytes there is little to
    // win, and the thread's meshes wait for system calls writing into the spans (see
    // meshing/write_protect.h) where the free path's would make them fail with EFAULT.
    return mode == kAuto && !g_startFailed.load(std::memory_order_relaxed) ? kThreadMeshes : 0;
  }
  g_freeRounds.fetch_add(1, std::memory_order_relaxed);
  if (g_idle.load(std::memory_order_relaxed) && g_idle.exchange(false, std::memory_order_relaxed)) {
    request(kActivity);
  }
  return (meshing ? kThreadMeshes : 0) | kThreadDecays;
}

bool runningInThisProcess() { return runningHere(); }

uint64_t quietCacheReturns() { return g_quietReturns.load(std::memory_order_relaxed); }

size_t returnOtherCachesForTest(size_t* busy) {
  CacheReturns r = returnCaches(runtime(), os::monotonicNs(), 0, true);
  *busy = r.busy;
  return r.returned;
}

AppSignalClaim::AppSignalClaim(int sig) MESH_NO_THREAD_SAFETY_ANALYSIS : locked_(g_signalLock.tryLockBounded()) {
  g_appClaimed[sig == SIGUSR1 ? 0 : 1].store(true, std::memory_order_relaxed);
}

AppSignalClaim::~AppSignalClaim() MESH_NO_THREAD_SAFETY_ANALYSIS {
  if (locked_) g_signalLock.unlock();
}

}  // namespace mesh::background
