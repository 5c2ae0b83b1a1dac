// C library functions libmesh interposes for the meshing write barrier, and fork.
//
// Signals: the barrier's SIGSEGV handler must stay installed, so an application's sigaction()
// or signal() for SIGSEGV is recorded as the handler we forward real faults to; and a thread
// must never block SIGSEGV (a fault on a blocked SIGSEGV kills the process), so it is dropped
// from sigprocmask()/pthread_sigmask() block sets.
//
// Kernel writes: read(2) and friends into a page that a mesh has made read-only fail with EFAULT
// instead of faulting. The wrappers retry once the mesh is over. The real functions are found
// with dlsym(RTLD_NEXT) on first use (outside any allocator lock, so its calloc is fine).
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

#include "common/compiler.h"
#include "entry/background.h"
#include "entry/runtime.h"
#include "global/write_barrier.h"
#include "platform/os.h"

using namespace mesh;

namespace {

template <typename Fn>
Fn next(std::atomic<void*>& cache, const char* name) {
  void* f = cache.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = os::nextSymbol(name);
    cache.store(f, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(f);
}

// True when a failed call may have hit a page a mesh made read-only: retry it then.
bool retryAfterMesh(long result, const void* buf, size_t len, uint64_t epochBefore) {
  if (result >= 0 || errno != EFAULT || !barrier::inArena(buf, len)) return false;
  if (!barrier::meshing() && barrier::epoch() == epochBefore) return false;  // a real EFAULT
  barrier::waitWhileMeshing();
  return true;
}

bool iovInArena(const struct iovec* iov, int count) {
  for (int i = 0; i < count; ++i) {
    if (barrier::inArena(iov[i].iov_base, iov[i].iov_len)) return true;
  }
  return false;
}

// Runs call() again while its failure was caused by a mesh in progress.
template <typename Call>
auto retrying(const void* buf, size_t len, Call call) {
  for (;;) {
    uint64_t epoch = barrier::epoch();
    auto r = call();
    if (!retryAfterMesh(static_cast<long>(r), buf, len, epoch)) return r;
  }
}

template <typename Call>
auto retryingIov(const struct iovec* iov, int count, Call call) {
  for (;;) {
    uint64_t epoch = barrier::epoch();
    auto r = call();
    if (r >= 0 || errno != EFAULT || !iovInArena(iov, count) ||
        (!barrier::meshing() && barrier::epoch() == epoch)) {
      return r;
    }
    barrier::waitWhileMeshing();
  }
}

void withoutSegv(const sigset_t* in, sigset_t* out) {
  *out = *in;
  sigdelset(out, SIGSEGV);
}

std::atomic<void*> g_fork, g_read, g_pread, g_readv, g_preadv, g_recv, g_recvfrom, g_recvmsg, g_getdents64,
    g_sigprocmask, g_pthread_sigmask, g_signal;

}  // namespace

extern "C" {

MESH_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig == SIGSEGV && barrier::installed()) {
    if (old != nullptr) barrier::getChained(old);
    if (act != nullptr) barrier::setChained(act);
    return 0;
  }
  if (act != nullptr && background::isReportSignal(sig)) {
    background::AppSignalClaim claim(sig);  // the application's choice wins over our report
    return os::libcSigaction(sig, act, old);
  }
  return os::libcSigaction(sig, act, old);
}

MESH_EXPORT sighandler_t signal(int sig, sighandler_t handler) {
  if (sig == SIGSEGV && barrier::installed()) {
    struct sigaction old, act {};
    barrier::getChained(&old);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    barrier::setChained(&act);
    if (old.sa_flags & SA_SIGINFO) return reinterpret_cast<sighandler_t>(reinterpret_cast<void*>(old.sa_sigaction));
    return old.sa_handler;
  }
  auto real = next<sighandler_t (*)(int, sighandler_t)>(g_signal, "signal");
  if (background::isReportSignal(sig)) {
    background::AppSignalClaim claim(sig);
    return real(sig, handler);
  }
  return real(sig, handler);
}

MESH_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  auto real = next<int (*)(int, const sigset_t*, sigset_t*)>(g_sigprocmask, "sigprocmask");
  if (set == nullptr || how == SIG_UNBLOCK) return real(how, set, old);
  sigset_t filtered;
  withoutSegv(set, &filtered);
  return real(how, &filtered, old);
}

MESH_EXPORT int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  auto real = next<int (*)(int, const sigset_t*, sigset_t*)>(g_pthread_sigmask, "pthread_sigmask");
  if (set == nullptr || how == SIG_UNBLOCK) return real(how, set, old);
  sigset_t filtered;
  withoutSegv(set, &filtered);
  return real(how, &filtered, old);
}

// fork: the child must get a private copy of the meshed heap (see global/fork.cc), made in a
// file that has to exist before fork. When it cannot be made, fork fails as the kernel's own
// fork does when memory is short, instead of letting parent and child share pages.
MESH_EXPORT pid_t fork() {
  auto real = next<pid_t (*)()>(g_fork, "fork");
  if (!reserveForkFile()) {
    errno = ENOMEM;
    return -1;
  }
  return real();
}

MESH_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  auto real = next<ssize_t (*)(int, void*, size_t)>(g_read, "read");
  return retrying(buf, n, [&] { return real(fd, buf, n); });
}

MESH_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off_t off) {
  auto real = next<ssize_t (*)(int, void*, size_t, off_t)>(g_pread, "pread64");
  return retrying(buf, n, [&] { return real(fd, buf, n, off); });
}

MESH_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t off) { return pread64(fd, buf, n, off); }

MESH_EXPORT ssize_t readv(int fd, const struct iovec* iov, int count) {
  auto real = next<ssize_t (*)(int, const struct iovec*, int)>(g_readv, "readv");
  return retryingIov(iov, count, [&] { return real(fd, iov, count); });
}

MESH_EXPORT ssize_t preadv64(int fd, const struct iovec* iov, int count, off_t off) {
  auto real = next<ssize_t (*)(int, const struct iovec*, int, off_t)>(g_preadv, "preadv64");
  return retryingIov(iov, count, [&] { return real(fd, iov, count, off); });
}

MESH_EXPORT ssize_t preadv(int fd, const struct iovec* iov, int count, off_t off) {
  return preadv64(fd, iov, count, off);
}

MESH_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
  auto real = next<ssize_t (*)(int, void*, size_t, int)>(g_recv, "recv");
  return retrying(buf, n, [&] { return real(fd, buf, n, flags); });
}

MESH_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* from,
                             socklen_t* fromLen) {
  auto real = next<ssize_t (*)(int, void*, size_t, int, struct sockaddr*, socklen_t*)>(g_recvfrom, "recvfrom");
  return retrying(buf, n, [&] { return real(fd, buf, n, flags, from, fromLen); });
}

MESH_EXPORT ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  auto real = next<ssize_t (*)(int, struct msghdr*, int)>(g_recvmsg, "recvmsg");
  return retryingIov(msg->msg_iov, static_cast<int>(msg->msg_iovlen), [&] { return real(fd, msg, flags); });
}

MESH_EXPORT ssize_t getdents64(int fd, void* buf, size_t n) {
  auto real = next<ssize_t (*)(int, void*, size_t)>(g_getdents64, "getdents64");
  return retrying(buf, n, [&] { return real(fd, buf, n); });
}

}  // extern "C"
