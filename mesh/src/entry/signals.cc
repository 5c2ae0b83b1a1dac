// The C library's signal functions, as the write barrier needs them and as the application must
// still see them (meshing/write_barrier.h; the contract is docs/host-contract.md, "Signals").
//
// Dispositions: every function that sets one for SIGSEGV goes through barrier::segvAction,
// which keeps the application's as the chained disposition once our handler is installed. The
// C library's own signal(), bsd_signal(), sysv_signal(), sigset(), sigignore() and
// siginterrupt() set dispositions with its internal sigaction, which cannot be interposed, so
// they are written again here, with the library's semantics, on top of our sigaction().
//
// Masks: SIGSEGV never enters the kernel's mask of a thread. The thread's virtual block
// (barrier::segvBlocked) stands in for it in every function that sets, reports or waits with a
// mask: sigprocmask, pthread_sigmask, sighold, sigrelse, sigset, sigblock, sigsetmask,
// siggetmask, sigpending, sigsuspend, sigpause, ppoll, pselect, epoll_pwait(2), sigwait,
// sigwaitinfo, sigtimedwait; siglongjmp and longjmp, which restore a saved mask; and
// pthread_create, whose thread starts with its creator's mask. The sa_mask of other signals'
// handlers does not hold SIGSEGV either: it is taken out when set and put back when read.
//
// The report signals (SIGUSR1, SIGUSR2): a disposition the application sets wins over libmesh's
// report handler (background::AppSignalClaim).
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include <atomic>
#include <cstring>

#include "common/compiler.h"
#include "entry/background.h"
#include "entry/interpose.h"
#include "meshing/write_barrier.h"
#include "platform/os.h"

using namespace mesh;

namespace {

bool validSignal(int sig) { return sig > 0 && sig < NSIG; }

// For each signal: the handler last set with SIGSEGV in its sa_mask (taken out for the kernel).
// A read of the disposition that finds this handler still there reports SIGSEGV in the mask.
std::atomic<bool> g_maskHadSegv[NSIG];
std::atomic<void*> g_maskHadSegvHandler[NSIG];
// Signals siginterrupt() made interrupting (bit sig-1): signal() installs them without SA_RESTART.
std::atomic<uint64_t> g_interrupting{0};

void* handlerOf(const struct sigaction& a) { return reinterpret_cast<void*>(a.sa_sigaction); }

int appSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig == SIGSEGV) return barrier::segvAction(act, old);
  struct sigaction kernelAct;
  bool segvInMask = false;
  if (act != nullptr) {
    std::memcpy(&kernelAct, act, sizeof kernelAct);
    segvInMask = sigismember(&kernelAct.sa_mask, SIGSEGV) == 1;
    sigdelset(&kernelAct.sa_mask, SIGSEGV);
  }
  const struct sigaction* use = act != nullptr ? &kernelAct : nullptr;
  bool valid = validSignal(sig);
  bool recorded = valid && g_maskHadSegv[sig].load(std::memory_order_acquire);
  void* recordedHandler = valid ? g_maskHadSegvHandler[sig].load(std::memory_order_relaxed) : nullptr;
  int result;
  if (act != nullptr && background::isReportSignal(sig)) {
    background::AppSignalClaim claim(sig);  // the application's choice wins over our report
    result = os::libcSigaction(sig, use, old);
  } else {
    result = os::libcSigaction(sig, use, old);
  }
  if (result != 0) return result;
  if (old != nullptr && recorded && handlerOf(*old) == recordedHandler) sigaddset(&old->sa_mask, SIGSEGV);
  if (act != nullptr) {
    g_maskHadSegvHandler[sig].store(handlerOf(kernelAct), std::memory_order_relaxed);  // act may be old
    g_maskHadSegv[sig].store(segvInMask, std::memory_order_release);
  }
  return 0;
}

// sigprocmask() and pthread_sigmask(): the kernel's mask without SIGSEGV, the virtual block
// for it. `real` returns 0 on success (both functions do).
template <typename Real>
int appSigmask(Real real, int how, const sigset_t* set, sigset_t* old) {
  bool was = barrier::segvBlocked();
  if (set == nullptr) {
    int result = real(how, nullptr, old);
    if (result == 0 && old != nullptr && was) sigaddset(old, SIGSEGV);
    return result;
  }
  bool member = sigismember(set, SIGSEGV) == 1;
  sigset_t kernelSet = *set;  // copied first: set and old may be the same
  sigdelset(&kernelSet, SIGSEGV);
  int result = real(how, &kernelSet, old);
  if (result != 0) return result;
  if (old != nullptr && was) sigaddset(old, SIGSEGV);
  bool now = was;
  if (how == SIG_BLOCK) now = was || member;
  else if (how == SIG_UNBLOCK) now = was && !member;
  else if (how == SIG_SETMASK) now = member;
  if (now != was) barrier::setSegvBlocked(now);  // unblocking delivers a held SIGSEGV
  return 0;
}

std::atomic<void*> g_sigprocmask, g_pthread_sigmask, g_sigpending, g_sigsuspend, g_ppoll, g_ppoll_chk, g_pselect,
    g_epoll_pwait, g_epoll_pwait2, g_sigtimedwait, g_pthread_create, g_longjmp, g_longjmp_chk;

using MaskFn = int (*)(int, const sigset_t*, sigset_t*);

int processMask(int how, const sigset_t* set, sigset_t* old) {
  return appSigmask(next<MaskFn>(g_sigprocmask, "sigprocmask"), how, set, old);
}

// A wait with a temporary mask (sigsuspend, ppoll, ...): the kernel gets the mask without
// SIGSEGV, and the virtual block follows the temporary mask until the call returns. A held
// SIGSEGV that the temporary mask lets through is delivered at once, and the wait ends with
// EINTR, as it would for a signal that was already pending.
template <typename Call>
auto waitWithMask(const sigset_t* mask, Call call) -> decltype(call(mask)) {
  if (mask == nullptr) return call(nullptr);
  bool blockedInside = sigismember(mask, SIGSEGV) == 1;
  bool was = barrier::segvBlocked();
  if (!blockedInside && barrier::segvPending()) {
    barrier::setSegvBlocked(false);  // delivers it
    barrier::setSegvBlocked(was);
    errno = EINTR;
    return -1;
  }
  sigset_t kernelMask = *mask;
  sigdelset(&kernelMask, SIGSEGV);
  if (blockedInside != was) barrier::setSegvBlocked(blockedInside);
  auto result = call(&kernelMask);
  int savedErrno = errno;
  if (barrier::segvBlocked() != was) barrier::setSegvBlocked(was);  // may deliver one sent meanwhile
  errno = savedErrno;
  return result;
}

int appSigsuspend(const sigset_t* mask) {
  auto real = next<int (*)(const sigset_t*)>(g_sigsuspend, "sigsuspend");
  return waitWithMask(mask, [&](const sigset_t* m) { return real(m); });
}

// The C library's conversion of a BSD mask (an int, bit n for signal n+1) to a signal set.
void fromBsdMask(int mask, sigset_t* set) {
  sigemptyset(set);
  for (int sig = 1; sig <= 32; ++sig) {
    if ((static_cast<unsigned>(mask) >> (sig - 1)) & 1u) sigaddset(set, sig);
  }
}

int toBsdMask(const sigset_t* set) {
  unsigned mask = 0;
  for (int sig = 1; sig <= 32; ++sig) {
    if (sigismember(set, sig) == 1) mask |= 1u << (sig - 1);
  }
  return static_cast<int>(mask);
}

int bsdMaskChange(int how, int mask) {
  sigset_t set, old;
  fromBsdMask(mask, &set);
  sigemptyset(&old);
  if (processMask(how, &set, &old) < 0) return -1;
  return toBsdMask(&old);
}

// sigpause(): wait with the current mask less sig (X/Open) or with a BSD mask.
int pauseWith(int sigOrMask, bool isSignal) {
  sigset_t mask;
  if (isSignal) {
    sigemptyset(&mask);
    if (processMask(SIG_BLOCK, nullptr, &mask) < 0 || sigdelset(&mask, sigOrMask) < 0) return -1;
  } else {
    fromBsdMask(sigOrMask, &mask);
  }
  return appSigsuspend(&mask);
}

// signal() and its kin: `handler` with `flags`, blocking its own signal while it runs or nothing.
sighandler_t simpleSignal(int sig, sighandler_t handler, bool blockOwn, int flags) {
  if (handler == SIG_ERR || !validSignal(sig)) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction act, old;
  std::memset(&act, 0, sizeof act);
  std::memset(&old, 0, sizeof old);
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  if (blockOwn) sigaddset(&act.sa_mask, sig);
  act.sa_flags = flags;
  if (appSigaction(sig, &act, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}

// signal(), bsd_signal() and ssignal(): the handler runs with its own signal blocked and
// restarts system calls unless siginterrupt() said otherwise.
sighandler_t bsdSignal(int sig, sighandler_t handler) {
  bool interrupting = validSignal(sig) && ((g_interrupting.load(std::memory_order_relaxed) >> (sig - 1)) & 1);
  return simpleSignal(sig, handler, true, interrupting ? 0 : SA_RESTART);
}

// sysv_signal(): a one-shot handler (reset to SIG_DFL when it is called) that does not block its
// own signal and interrupts system calls.
sighandler_t sysvSignal(int sig, sighandler_t handler) {
  return simpleSignal(sig, handler, false, SA_RESETHAND | SA_NODEFER);
}

// A thread started by one that blocked SIGSEGV starts with it blocked, as it inherits the mask.
struct BlockedStart {
  void* (*fn)(void*);
  void* arg;
};

void* startWithSegvBlocked(void* p) {
  BlockedStart start = *static_cast<BlockedStart*>(p);
  free(p);
  barrier::setSegvBlocked(true);
  return start.fn(start.arg);
}

// A jump that restores a saved mask restores the virtual block with it; then the C library's.
[[noreturn]] void jump(std::atomic<void*>& cache, const char* name, struct __jmp_buf_tag* env, int value) {
  if (env->__mask_was_saved) barrier::setSegvBlocked(sigismember(&env->__saved_mask, SIGSEGV) == 1);
  next<void (*)(struct __jmp_buf_tag*, int)>(cache, name)(env, value);
  __builtin_unreachable();
}

}  // namespace

extern "C" {

MESH_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  return appSigaction(sig, act, old);
}

MESH_EXPORT sighandler_t signal(int sig, sighandler_t handler) { return bsdSignal(sig, handler); }
MESH_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler) { return bsdSignal(sig, handler); }
MESH_EXPORT sighandler_t ssignal(int sig, sighandler_t handler) { return bsdSignal(sig, handler); }
MESH_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler) { return sysvSignal(sig, handler); }
MESH_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler) { return sysvSignal(sig, handler); }

// sigset(): SIG_HOLD adds sig to the mask; any other disposition is installed (empty mask, no
// flags) and sig taken out of the mask. Returns SIG_HOLD when sig was blocked before, else the
// previous disposition.
MESH_EXPORT sighandler_t sigset(int sig, sighandler_t disp) {
  sigset_t set, old;
  sigemptyset(&set);
  sigemptyset(&old);
  if (sigaddset(&set, sig) < 0) return SIG_ERR;
  struct sigaction act, previous;
  std::memset(&previous, 0, sizeof previous);
  if (disp == SIG_HOLD) {
    if (processMask(SIG_BLOCK, &set, &old) < 0) return SIG_ERR;
    if (sigismember(&old, sig) == 1) return SIG_HOLD;
    if (appSigaction(sig, nullptr, &previous) < 0) return SIG_ERR;
    return previous.sa_handler;
  }
  std::memset(&act, 0, sizeof act);
  act.sa_handler = disp;
  sigemptyset(&act.sa_mask);
  if (appSigaction(sig, &act, &previous) < 0) return SIG_ERR;
  if (processMask(SIG_UNBLOCK, &set, &old) < 0) return SIG_ERR;
  return sigismember(&old, sig) == 1 ? SIG_HOLD : previous.sa_handler;
}

MESH_EXPORT int sighold(int sig) {
  sigset_t set;
  sigemptyset(&set);
  if (sigaddset(&set, sig) < 0) return -1;
  return processMask(SIG_BLOCK, &set, nullptr);
}

MESH_EXPORT int sigrelse(int sig) {
  sigset_t set;
  sigemptyset(&set);
  if (sigaddset(&set, sig) < 0) return -1;
  return processMask(SIG_UNBLOCK, &set, nullptr);
}

MESH_EXPORT int sigignore(int sig) {
  struct sigaction act;
  std::memset(&act, 0, sizeof act);
  act.sa_handler = SIG_IGN;
  sigemptyset(&act.sa_mask);
  return appSigaction(sig, &act, nullptr);
}

MESH_EXPORT int siginterrupt(int sig, int interrupt) {
  if (!validSignal(sig)) {
    errno = EINVAL;
    return -1;
  }
  struct sigaction act;
  std::memset(&act, 0, sizeof act);
  if (appSigaction(sig, nullptr, &act) < 0) return -1;
  uint64_t bit = uint64_t{1} << (sig - 1);
  if (interrupt != 0) {
    g_interrupting.fetch_or(bit, std::memory_order_relaxed);
    act.sa_flags &= ~SA_RESTART;
  } else {
    g_interrupting.fetch_and(~bit, std::memory_order_relaxed);
    act.sa_flags |= SA_RESTART;
  }
  return appSigaction(sig, &act, nullptr) < 0 ? -1 : 0;
}

MESH_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) { return processMask(how, set, old); }

MESH_EXPORT int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  return appSigmask(next<MaskFn>(g_pthread_sigmask, "pthread_sigmask"), how, set, old);
}

MESH_EXPORT int sigblock(int mask) { return bsdMaskChange(SIG_BLOCK, mask); }
MESH_EXPORT int sigsetmask(int mask) { return bsdMaskChange(SIG_SETMASK, mask); }
MESH_EXPORT int siggetmask(void) { return bsdMaskChange(SIG_BLOCK, 0); }

MESH_EXPORT int sigpending(sigset_t* set) {
  int result = next<int (*)(sigset_t*)>(g_sigpending, "sigpending")(set);
  if (result == 0 && barrier::segvPending()) sigaddset(set, SIGSEGV);
  return result;
}

MESH_EXPORT int sigsuspend(const sigset_t* mask) { return appSigsuspend(mask); }
MESH_EXPORT int __sigpause(int sigOrMask, int isSignal) { return pauseWith(sigOrMask, isSignal != 0); }
MESH_EXPORT int __xpg_sigpause(int sig) { return pauseWith(sig, true); }
// The symbol sigpause is the old BSD one (a mask); the headers map sigpause() to __xpg_sigpause.
MESH_EXPORT int bsdSigpause(int mask) __asm__("sigpause");
MESH_EXPORT int bsdSigpause(int mask) { return pauseWith(mask, false); }

MESH_EXPORT int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout, const sigset_t* mask) {
  auto real = next<int (*)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*)>(g_ppoll, "ppoll");
  return waitWithMask(mask, [&](const sigset_t* m) { return real(fds, n, timeout, m); });
}

MESH_EXPORT int __ppoll_chk(struct pollfd* fds, nfds_t n, const struct timespec* timeout, const sigset_t* mask,
                            size_t fdsLen) {
  auto real = next<int (*)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*, size_t)>(
      g_ppoll_chk, "__ppoll_chk");
  return waitWithMask(mask, [&](const sigset_t* m) { return real(fds, n, timeout, m, fdsLen); });
}

MESH_EXPORT int pselect(int n, fd_set* r, fd_set* w, fd_set* e, const struct timespec* timeout,
                        const sigset_t* mask) {
  auto real = next<int (*)(int, fd_set*, fd_set*, fd_set*, const struct timespec*, const sigset_t*)>(
      g_pselect, "pselect");
  return waitWithMask(mask, [&](const sigset_t* m) { return real(n, r, w, e, timeout, m); });
}

MESH_EXPORT int epoll_pwait(int fd, struct epoll_event* events, int max, int timeout, const sigset_t* mask) {
  auto real = next<int (*)(int, struct epoll_event*, int, int, const sigset_t*)>(g_epoll_pwait, "epoll_pwait");
  return waitWithMask(mask, [&](const sigset_t* m) { return real(fd, events, max, timeout, m); });
}

MESH_EXPORT int epoll_pwait2(int fd, struct epoll_event* events, int max, const struct timespec* timeout,
                             const sigset_t* mask) {
  auto real = next<int (*)(int, struct epoll_event*, int, const struct timespec*, const sigset_t*)>(
      g_epoll_pwait2, "epoll_pwait2");
  if (real == nullptr) {
    errno = ENOSYS;  // a C library older than 2.35
    return -1;
  }
  return waitWithMask(mask, [&](const sigset_t* m) { return real(fd, events, max, timeout, m); });
}

// The waits for a signal accept a SIGSEGV held back by the virtual block (it interrupts the
// kernel's wait when it is sent, as our handler takes it).
MESH_EXPORT int sigtimedwait(const sigset_t* set, siginfo_t* info, const struct timespec* timeout) {
  auto real = next<int (*)(const sigset_t*, siginfo_t*, const struct timespec*)>(g_sigtimedwait, "sigtimedwait");
  bool wantsSegv = sigismember(set, SIGSEGV) == 1;
  auto takeHeld = [&] {
    if (!wantsSegv || !barrier::takeSegvPending(info)) return false;
    // The C library reports a signal sent with tkill (as raise() sends it) as sent with kill.
    if (info != nullptr && info->si_code == SI_TKILL) info->si_code = SI_USER;
    return true;
  };
  if (takeHeld()) return SIGSEGV;
  int result = real(set, info, timeout);
  if (result < 0 && errno == EINTR && takeHeld()) return SIGSEGV;
  return result;
}

MESH_EXPORT int sigwaitinfo(const sigset_t* set, siginfo_t* info) { return sigtimedwait(set, info, nullptr); }

MESH_EXPORT int sigwait(const sigset_t* set, int* sig) {
  for (;;) {
    int result = sigtimedwait(set, nullptr, nullptr);
    if (result > 0) {
      *sig = result;
      return 0;
    }
    if (errno != EINTR) return errno;
  }
}

MESH_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) {
  using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  auto real = next<CreateFn>(g_pthread_create, "pthread_create");
  if (!barrier::segvBlocked()) return real(thread, attr, fn, arg);
  auto* start = static_cast<BlockedStart*>(malloc(sizeof(BlockedStart)));
  if (start == nullptr) return EAGAIN;
  start->fn = fn;
  start->arg = arg;
  int result = real(thread, attr, startWithSegvBlocked, start);
  if (result != 0) free(start);
  return result;
}

// glibc's siglongjmp, longjmp and _longjmp are one function.
MESH_EXPORT void siglongjmp(struct __jmp_buf_tag env[1], int value) noexcept { jump(g_longjmp, "siglongjmp", env, value); }
MESH_EXPORT void longjmp(struct __jmp_buf_tag env[1], int value) noexcept { jump(g_longjmp, "longjmp", env, value); }
MESH_EXPORT void _longjmp(struct __jmp_buf_tag env[1], int value) noexcept { jump(g_longjmp, "_longjmp", env, value); }
MESH_EXPORT void __longjmp_chk(struct __jmp_buf_tag env[1], int value) noexcept {
  jump(g_longjmp_chk, "__longjmp_chk", env, value);
}

}  // extern "C"
