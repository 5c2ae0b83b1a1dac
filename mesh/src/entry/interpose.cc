// C library functions libmesh interposes for the meshing write barrier, and fork. (The signal
// functions are in entry/signals.cc.)
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
#include "entry/fork_handlers.h"
#include "entry/interpose.h"
#include "entry/runtime.h"
#include "meshing/write_barrier.h"
#include "platform/os.h"

using namespace mesh;

namespace {

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

std::atomic<void*> g_fork, g_read, g_pread, g_readv, g_preadv, g_recv, g_recvfrom, g_recvmsg, g_getdents64;

}  // namespace

extern "C" {

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
