#include "meshing/write_barrier.h"

#include <ucontext.h>

#include <cerrno>
#include <cstring>

#include "platform/os.h"

namespace mesh::barrier {
namespace {

std::atomic<uint64_t> g_epoch{0};
PauseHistogram g_waits;  // how long threads waited for a mesh to end (faults and wrapped calls)
// waitWhileMeshing calls (only on the fault and EFAULT paths, never on a fast path).
std::atomic<uint64_t> g_retries{0};
std::atomic<bool> g_installed{false};
std::atomic<uintptr_t> g_base{0};
std::atomic<size_t> g_bytes{0};

// The application's disposition, as the kernel would hold it. Written with the sequence odd and
// every signal blocked (so no handler of the writing thread can wait for the writer), read by the
// handler without a lock: a copy is retried until the sequence shows that no writer came between.
struct sigaction g_chained;
std::atomic<uint32_t> g_chainedSeq{0};
int g_ourFlags = 0;  // the flags our handler is installed with now (written with the sequence odd)

// How the C library and the kernel store a disposition, learnt from our own at installation: the
// flags the library adds to every one (SA_RESTORER on x86-64) and the restorer it passes, and
// whether the kernel drops the flag bits it does not know (Linux 5.11 and later).
int g_addedFlags = 0;
void (*g_restorer)() = nullptr;
bool g_dropsUnknownFlags = false;

constexpr int kUnsupportedFlag = 0x400;    // SA_UNSUPPORTED: never a valid flag, so a probe
constexpr int kExposeTagBitsFlag = 0x800;  // SA_EXPOSE_TAGBITS
constexpr int kKnownFlags = SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART |
                            SA_NODEFER | SA_RESETHAND | kExposeTagBitsFlag;
constexpr size_t kKernelMaskBytes = 8;  // the kernel's sigset: signals 1 to 64

// The calling thread's virtual SIGSEGV block, and a sent SIGSEGV waiting for its end. Volatile:
// our handler reads and writes them on the same thread.
__thread volatile bool t_segvBlocked __attribute__((tls_model("initial-exec"))) = false;
__thread volatile bool t_segvPending __attribute__((tls_model("initial-exec"))) = false;
__thread siginfo_t t_pendingInfo __attribute__((tls_model("initial-exec")));
// Consecutive arena faults of this thread while no mesh was running (a real fault repeats).
__thread uint32_t t_idleFaults __attribute__((tls_model("initial-exec"))) = 0;
constexpr uint32_t kMaxIdleFaults = 1000;

bool isFunction(const struct sigaction& a) { return a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN; }

// A sent SIGSEGV while the thread blocks it. Like any standard signal it is pending at most once:
// a second one is lost.
void holdSent(const siginfo_t* info) {
  if (t_segvPending) return;
  std::memcpy(&t_pendingInfo, info, sizeof t_pendingInfo);
  t_segvPending = true;
}

// Delivers the held SIGSEGV now, with its sender's siginfo.
void deliverHeld() {
  t_segvPending = false;
  os::resendToThisThread(SIGSEGV, &t_pendingInfo);
}

// Holds the chained disposition for writing, with every signal of the thread blocked.
class ChainedWrite {
 public:
  ChainedWrite() {
    sigset_t all;
    sigfillset(&all);
    sigemptyset(&saved_);
    os::kernelSignalMask(SIG_BLOCK, &all, &saved_);
    for (;;) {
      uint32_t seq = g_chainedSeq.load(std::memory_order_relaxed);
      if ((seq & 1) == 0 && g_chainedSeq.compare_exchange_weak(seq, seq + 1, std::memory_order_acquire)) return;
      os::yieldSignalSafe();
    }
  }
  ~ChainedWrite() {
    g_chainedSeq.fetch_add(1, std::memory_order_release);
    os::kernelSignalMask(SIG_SETMASK, &saved_, nullptr);
  }
  ChainedWrite(const ChainedWrite&) = delete;
  ChainedWrite& operator=(const ChainedWrite&) = delete;

 private:
  sigset_t saved_;
};

void readChained(struct sigaction* out) {
  for (;;) {
    uint32_t before = g_chainedSeq.load(std::memory_order_acquire);
    if (before & 1) continue;
    std::memcpy(out, &g_chained, sizeof *out);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (g_chainedSeq.load(std::memory_order_relaxed) == before) return;
  }
}

// What the kernel keeps of a disposition set through the C library's sigaction: the handler, the
// first 64 signals of the mask less SIGKILL and SIGSTOP, the flags with the library's added and,
// on a recent kernel, without unknown bits, and the library's restorer.
void storeAsKernel(const struct sigaction& act, struct sigaction* out) {
  std::memset(out, 0, sizeof *out);
  out->sa_sigaction = act.sa_sigaction;  // the handler, whichever member of the union it is
  std::memcpy(&out->sa_mask, &act.sa_mask, kKernelMaskBytes);
  sigdelset(&out->sa_mask, SIGKILL);
  sigdelset(&out->sa_mask, SIGSTOP);
  int flags = act.sa_flags | g_addedFlags;
  if (g_dropsUnknownFlags) flags &= kKnownFlags | g_addedFlags;
  out->sa_flags = flags;
  out->sa_restorer = g_restorer;
}

// The fields the C library's sigaction writes into its `old` argument (the rest of the mask is
// left alone, as it is by the library).
void copyOutAsLibc(const struct sigaction& stored, struct sigaction* old) {
  old->sa_sigaction = stored.sa_sigaction;
  std::memcpy(&old->sa_mask, &stored.sa_mask, kKernelMaskBytes);
  old->sa_flags = stored.sa_flags;
  old->sa_restorer = stored.sa_restorer;
}

void onSegv(int sig, siginfo_t* info, void* ctx);

// Our handler runs on the stack, and restarts the calls, that the application's handler would:
// a stack overflow reaches a handler with SA_ONSTACK on the alternate stack, and kills the process
// where no handler could run there. With SIG_DFL or SIG_IGN it runs on the current stack (as it
// always did: an alternate stack too small for a signal frame must not kill a thread that meshes)
// and restarts the calls that an ignored signal would never have interrupted.
int ourFlagsFor(const struct sigaction& app) {
  int mirrored = isFunction(app) ? app.sa_flags & (SA_ONSTACK | SA_RESTART) : SA_RESTART;
  return SA_SIGINFO | SA_NODEFER | mirrored;
}

bool installOurs(int flags, struct sigaction* old) {
  struct sigaction act;
  std::memset(&act, 0, sizeof act);
  act.sa_sigaction = onSegv;
  act.sa_flags = flags;
  sigemptyset(&act.sa_mask);
  if (os::libcSigaction(SIGSEGV, &act, old) != 0) return false;
  g_ourFlags = flags;
  return true;
}

// Called with the chained disposition held for writing.
void mirrorFlags() {
  int flags = ourFlagsFor(g_chained);
  if (flags != g_ourFlags) installOurs(flags, nullptr);
}

bool installHandler() {
  if (g_installed.load(std::memory_order_acquire)) return true;
  ChainedWrite hold;
  if (g_installed.load(std::memory_order_relaxed)) return true;
  struct sigaction old, now;
  std::memset(&old, 0, sizeof old);
  std::memset(&now, 0, sizeof now);
  const int probe = SA_SIGINFO | SA_NODEFER | SA_RESTART | kUnsupportedFlag;
  if (!installOurs(probe, &old)) return false;
  if (os::libcSigaction(SIGSEGV, nullptr, &now) == 0) {
    g_addedFlags = now.sa_flags & ~probe;
    g_dropsUnknownFlags = (now.sa_flags & kUnsupportedFlag) == 0;
    g_restorer = now.sa_restorer;
  }
  std::memcpy(&g_chained, &old, sizeof old);  // as the kernel holds it already
  mirrorFlags();
  g_installed.store(true, std::memory_order_release);
  return true;
}

// The kernel's default action: the process dies of the signal. A fault kills when the handler
// returns and the instruction faults again; a sent signal is sent again.
void defaultAction(int sig, bool sent) {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  os::libcSigaction(sig, &dfl, nullptr);
  if (sent) os::raiseSignal(sig);
}

// The chained disposition for one delivery; a handler with SA_RESETHAND is replaced by SIG_DFL
// first (only the handler changes, as in the kernel).
void takeForDelivery(struct sigaction* app) {
  readChained(app);
  if ((app->sa_flags & SA_RESETHAND) == 0 || !isFunction(*app)) return;
  ChainedWrite hold;
  std::memcpy(app, &g_chained, sizeof *app);
  if ((app->sa_flags & SA_RESETHAND) != 0 && isFunction(*app)) {
    g_chained.sa_handler = SIG_DFL;
    mirrorFlags();
  }
}

// Runs the application's handler as the kernel would have: its sa_mask, and SIGSEGV unless
// SA_NODEFER, blocked while it runs (SIGSEGV virtually). Our own return restores the interrupted
// mask, as the end of its handler would.
void runHandler(const struct sigaction& app, int sig, siginfo_t* info, void* ctx) {
  sigset_t block = app.sa_mask;
  sigdelset(&block, SIGSEGV);
  os::kernelSignalMask(SIG_BLOCK, &block, nullptr);
  bool blockedBefore = t_segvBlocked;
  if ((app.sa_flags & SA_NODEFER) == 0 || sigismember(&app.sa_mask, SIGSEGV) == 1) t_segvBlocked = true;
  if ((app.sa_flags & SA_SIGINFO) != 0) {
    app.sa_sigaction(sig, info, ctx);
  } else {
    app.sa_handler(sig);
  }
  // The handler may have put SIGSEGV into the mask the thread returns to.
  auto* uc = static_cast<ucontext_t*>(ctx);
  bool blockedAfter = blockedBefore;
  if (uc != nullptr && sigismember(&uc->uc_sigmask, SIGSEGV) == 1) {
    sigdelset(&uc->uc_sigmask, SIGSEGV);
    blockedAfter = true;
  }
  t_segvBlocked = blockedAfter;
  if (!blockedAfter && t_segvPending) {
    // Sent while the handler ran: delivered now, with the mask of the interrupted code.
    if (uc != nullptr) os::kernelSignalMask(SIG_SETMASK, &uc->uc_sigmask, nullptr);
    deliverHeld();
  }
}

// A SIGSEGV that is no barrier fault: what the kernel would have done with it.
void forward(int sig, siginfo_t* info, void* ctx, bool sent) {
  if (t_segvBlocked) {
    if (sent) {
      holdSent(info);  // until the thread unblocks SIGSEGV
    } else {
      defaultAction(sig, false);  // a fault on a blocked signal kills
    }
    return;
  }
  struct sigaction app;
  takeForDelivery(&app);
  if (app.sa_handler == SIG_DFL) {
    defaultAction(sig, sent);
  } else if (app.sa_handler == SIG_IGN) {
    if (!sent) defaultAction(sig, false);  // the kernel cannot ignore a fault
  } else {
    runHandler(app, sig, info, ctx);
  }
}

void onSegv(int sig, siginfo_t* info, void* ctx) {
  int savedErrno = errno;
  // Faults carry a positive si_code; kill(), raise() and sigqueue() zero or a negative one. (The
  // kernel always passes a siginfo to an SA_SIGINFO handler.)
  bool fault = info->si_code > 0;
  if (fault && inArena(info->si_addr, 1)) {
    if (meshing()) {
      t_idleFaults = 0;
      waitWhileMeshing();
      errno = savedErrno;
      return;  // the faulting write runs again, now on the remapped page
    }
    // The mesh may have ended between the fault and now: retry, but not forever.
    if (++t_idleFaults < kMaxIdleFaults) {
      errno = savedErrno;
      return;
    }
  }
  t_idleFaults = 0;
  errno = savedErrno;
  forward(sig, info, ctx, !fault);
}

}  // namespace

bool install(const void* arenaBase, size_t arenaBytes) {
  // The range is that of the arena meshing now (the process heap; in unit tests, the heap
  // instance under test).
  g_base.store(reinterpret_cast<uintptr_t>(arenaBase), std::memory_order_relaxed);
  g_bytes.store(arenaBytes, std::memory_order_relaxed);
  return installHandler();
}

bool installed() { return g_installed.load(std::memory_order_acquire); }

void begin() { g_epoch.fetch_add(1, std::memory_order_seq_cst); }
void end() { g_epoch.fetch_add(1, std::memory_order_seq_cst); }
bool meshing() { return (g_epoch.load(std::memory_order_acquire) & 1) != 0; }
uint64_t epoch() { return g_epoch.load(std::memory_order_acquire); }

void waitWhileMeshing() {
  g_retries.fetch_add(1, std::memory_order_relaxed);
  // Wait for the mesh running now to end, not for a moment with no mesh at all: the mesher
  // starts the next pair at once, and a waiter that missed the gap would wait through all of a
  // step's meshes (30 ms seen on kvstore). If the retried write meets the next mesh, it waits
  // for that one in turn.
  uint64_t seen = g_epoch.load(std::memory_order_acquire);
  if ((seen & 1) == 0) return;
  uint64_t start = os::monotonicNs();
  while (g_epoch.load(std::memory_order_acquire) == seen) os::yieldSignalSafe();
  g_waits.record(os::monotonicNs() - start);
}

const PauseHistogram& waits() { return g_waits; }

void noteKernelWaits(uint64_t count, uint64_t ns) {
  for (uint64_t i = 0; i < count && i < 64; ++i) g_waits.record(ns);
}
uint64_t retries() { return g_retries.load(std::memory_order_relaxed); }

bool inArena(const void* p, size_t len) {
  uintptr_t base = g_base.load(std::memory_order_relaxed);
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  size_t bytes = g_bytes.load(std::memory_order_relaxed);
  return base != 0 && a + len > base && a < base + bytes;
}

int segvAction(const struct sigaction* act, struct sigaction* old) {
  // The caller's structures are read and written outside the write section (every signal is
  // blocked there, so a fault would kill).
  struct sigaction want, prev;
  if (act != nullptr) std::memcpy(&want, act, sizeof want);
  std::memset(&prev, 0, sizeof prev);
  int result = 0;
  {
    ChainedWrite hold;
    if (!g_installed.load(std::memory_order_relaxed)) {
      result = os::libcSigaction(SIGSEGV, act != nullptr ? &want : nullptr, &prev);
    } else {
      std::memcpy(&prev, &g_chained, sizeof prev);
      if (act != nullptr) {
        storeAsKernel(want, &g_chained);
        mirrorFlags();
        // Like the kernel, a signal that becomes ignored is no longer pending (this thread's).
        if (g_chained.sa_handler == SIG_IGN) t_segvPending = false;
      }
    }
  }
  if (result == 0 && old != nullptr) copyOutAsLibc(prev, old);
  return result;
}

bool segvBlocked() { return t_segvBlocked; }

void setSegvBlocked(bool blocked) {
  if (blocked) {
    // Without our handler a real fault would reach the application's handler, not kill.
    if (!t_segvBlocked && installHandler()) t_segvBlocked = true;
    return;
  }
  t_segvBlocked = false;
  if (t_segvPending) deliverHeld();
}

bool segvPending() { return t_segvPending; }

bool takeSegvPending(siginfo_t* info) {
  if (!t_segvPending) return false;
  if (info != nullptr) std::memcpy(info, &t_pendingInfo, sizeof *info);
  t_segvPending = false;
  return true;
}

void afterForkInChild() {
  // A thread of the parent may have held the chained disposition for writing.
  uint32_t seq = g_chainedSeq.load(std::memory_order_relaxed);
  if (seq & 1) g_chainedSeq.store(seq + 1, std::memory_order_relaxed);
}

}  // namespace mesh::barrier
