#include "platform/os.h"

#include <atomic>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstddef>
#include <cstring>

extern char** environ;
// glibc's implementation of sigaction under its internal name (exported since 2.2.5).
extern "C" int __sigaction(int sig, const struct sigaction* act, struct sigaction* old);

namespace mesh::os {

void* mapAnonymous(size_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void* reserveAddressSpace(void* hint, size_t len, bool readable, bool exactly) {
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (exactly ? MAP_FIXED_NOREPLACE : 0);
  void* p = ::mmap(hint, len, readable ? PROT_READ : PROT_NONE, flags, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (exactly && p != hint) {  // a kernel without MAP_FIXED_NOREPLACE took it as a hint
    ::munmap(p, len);
    return nullptr;
  }
  return p;
}

bool commit(void* addr, size_t len) { return ::mprotect(addr, len, PROT_READ | PROT_WRITE) == 0; }

bool decommit(void* addr, size_t len) {
  return ::mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != MAP_FAILED;
}

size_t addressSpaceLimit() {
  struct rlimit lim;
  if (::getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  return static_cast<size_t>(lim.rlim_cur);
}

bool strictOvercommit() { return readLongFile("/proc/sys/vm/overcommit_memory", 0) == 2; }

bool mapAnonymousFixed(void* addr, size_t len) {
  void* p = ::mmap(addr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  return p != MAP_FAILED;
}

void* mapShared(void* addr, size_t len, int fd, size_t offset) {
  int flags = MAP_SHARED | MAP_NORESERVE | (addr != nullptr ? MAP_FIXED : 0);
  void* p = ::mmap(addr, len, PROT_READ | PROT_WRITE, flags, fd, static_cast<off_t>(offset));
  return p == MAP_FAILED ? nullptr : p;
}

bool unmap(void* addr, size_t len) { return ::munmap(addr, len) == 0; }

bool protect(void* addr, size_t len, bool writable) {
  return ::mprotect(addr, len, writable ? PROT_READ | PROT_WRITE : PROT_READ) == 0;
}

bool discardAnonymous(void* addr, size_t len) { return ::madvise(addr, len, MADV_DONTNEED) == 0; }

namespace {
// PIDFD_SELF_THREAD (Linux 6.15 uapi): the calling thread, whose address space is the process's.
// A kernel without it refuses the call (EBADF), like one without process_madvise (ENOSYS) or
// one that allows only some advice on the calling process (EINVAL, before 6.13).
constexpr int kPidfdSelf = -10000;
std::atomic<bool> g_batchDiscardRefused{false};
}  // namespace

bool discardAnonymousBatch(const PageRange* ranges, size_t count) {
  static_assert(sizeof(PageRange) == sizeof(struct iovec));
  static_assert(offsetof(PageRange, len) == offsetof(struct iovec, iov_len));
#ifdef SYS_process_madvise
  if (count == 0) return true;
  if (count > IOV_MAX || g_batchDiscardRefused.load(std::memory_order_relaxed)) return false;
  size_t want = 0;
  for (size_t i = 0; i < count; ++i) want += ranges[i].len;
  int saved = errno;  // a refusal must not show in the caller's errno (free keeps it)
  long done = ::syscall(SYS_process_madvise, kPidfdSelf, ranges, count, MADV_DONTNEED, 0u);
  if (done < 0 && (errno == ENOSYS || errno == EBADF || errno == EINVAL || errno == EPERM || errno == ESRCH)) {
    g_batchDiscardRefused.store(true, std::memory_order_relaxed);
  }
  errno = saved;
  return done >= 0 && static_cast<size_t>(done) == want;
#else
  (void)ranges;
  (void)count;
  return false;
#endif
}

bool noHugePages(void* addr, size_t len) { return ::madvise(addr, len, MADV_NOHUGEPAGE) == 0; }

int memfdCreate(const char* name) {
  return static_cast<int>(::syscall(SYS_memfd_create, name, MFD_CLOEXEC));
}

bool truncateFile(int fd, size_t len) { return ::ftruncate(fd, static_cast<off_t>(len)) == 0; }

void* createSharedFile(size_t len) {
  // (A shared anonymous mapping is charged in full under strict overcommit; a memfd is charged
  // page by page as it is written.)
  int fd = memfdCreate("libmesh-arena");
  void* view = MAP_FAILED;
  if (fd >= 0) {
    if (truncateFile(fd, len)) {
      view = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    }
    ::close(fd);  // the mapping keeps the file alive
  }
  if (view == MAP_FAILED) {
    view = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }
  return view == MAP_FAILED ? nullptr : view;
}

bool aliasSharedMapping(void* from, void* to, size_t len) {
  void* p = ::mremap(from, 0, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  return p != MAP_FAILED;
}

bool removeSharedPages(void* addr, size_t len) { return ::madvise(addr, len, MADV_REMOVE) == 0; }

bool populateWritable(void* addr, size_t len) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  return ::madvise(addr, len, MADV_POPULATE_WRITE) == 0 || errno == EINVAL;
}

void closeFd(int fd) {
  if (fd >= 0) ::close(fd);
}

bool makePipe(int fds[2]) { return ::pipe2(fds, O_CLOEXEC) == 0; }

static thread_local bool t_ownDescriptorTable = false;

void setOwnDescriptorTable() { t_ownDescriptorTable = true; }

void writeAll(int fd, const void* buf, size_t len) {
  if (t_ownDescriptorTable && fd >= 0 && fd <= 2) {
    // The program's descriptor, reopened for this write (the thread-group leader's table is
    // the one /proc/self/fd shows).
    char path[] = "/proc/self/fd/0";
    path[sizeof path - 2] = static_cast<char>('0' + fd);
    int own = ::open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
    if (own < 0) return;
    t_ownDescriptorTable = false;
    writeAll(own, buf, len);
    t_ownDescriptorTable = true;
    ::close(own);
    return;
  }
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<size_t>(n);
  }
}

long readSome(int fd, void* buf, size_t len) {
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

long readSmallFile(const char* path, char* buf, size_t len) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t used = 0;
  while (used + 1 < len) {
    long n = readSome(fd, buf + used, len - 1 - used);
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  buf[used] = '\0';
  return static_cast<long>(used);
}

long readLongFile(const char* path, long fallback) {
  char buf[64];
  if (readSmallFile(path, buf, sizeof buf) <= 0) return fallback;
  long v = 0;
  const char* p = buf;
  while (*p == ' ') ++p;
  if (*p < '0' || *p > '9') return fallback;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  return v;
}

long mappingCount() {
  MapsCounter counter;
  long lines = -1;
  counter.step(SIZE_MAX, &lines);  // no limit: one call reads the whole file
  return lines;
}

// The file stays open between calls, so the application may have closed its descriptor (a
// daemon closing every fd) and opened something else under the same number. Before each use it
// is checked to be still the file we opened (device and inode); if not, it is forgotten without
// being read or closed, and the count starts over.
bool MapsCounter::stillOurs() const {
  struct stat st;
  return ::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_dev) == dev_ &&
         static_cast<uint64_t>(st.st_ino) == ino_;
}

bool MapsCounter::step(size_t maxBytes, long* count) {
  if (fd_ >= 0 && !stillOurs()) fd_ = -1;
  if (fd_ < 0) {
    fd_ = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    lines_ = 0;
    struct stat st;
    if (fd_ >= 0 && ::fstat(fd_, &st) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (fd_ < 0) {
      *count = -1;
      return true;
    }
    dev_ = static_cast<uint64_t>(st.st_dev);
    ino_ = static_cast<uint64_t>(st.st_ino);
  }
  char buf[4096];
  for (size_t done = 0; done < maxBytes;) {
    long n = readSome(fd_, buf, sizeof buf);
    if (n <= 0) {
      *count = n == 0 ? lines_ : -1;
      reset();
      return true;
    }
    for (long i = 0; i < n; ++i) lines_ += buf[i] == '\n';
    done += static_cast<size_t>(n);
  }
  return false;
}

void MapsCounter::reset() {
  if (fd_ >= 0 && stillOurs()) ::close(fd_);
  fd_ = -1;
  lines_ = 0;
}

long pssKiB() {
  char buf[2048];
  if (readSmallFile("/proc/self/smaps_rollup", buf, sizeof buf) <= 0) return -1;
  const char* p = std::strstr(buf, "\nPss:");
  if (p == nullptr) return -1;
  p += 5;
  while (*p == ' ') ++p;
  long v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  return v;
}

const char* getEnv(const char* name) {
  if (environ == nullptr) return nullptr;
  size_t n = std::strlen(name);
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  }
  return nullptr;
}

namespace {
uint64_t clockNs(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

uint64_t monotonicNs() { return clockNs(CLOCK_MONOTONIC); }
uint64_t processCpuNs() { return clockNs(CLOCK_PROCESS_CPUTIME_ID); }
uint64_t threadCpuNs() { return clockNs(CLOCK_THREAD_CPUTIME_ID); }

int currentThreadId() { return static_cast<int>(::syscall(SYS_gettid)); }

void yieldThread() { ::sched_yield(); }

void futexWait(const int* word, int expected) {
  timespec timeout{0, 1000000};  // 1 ms: callers re-check their condition in a loop
  ::syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &timeout, nullptr, 0);
}

void futexWakeAll(const int* word) {
  ::syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr, nullptr, 0);
}

void futexWaitFor(const int* word, int expected, uint64_t timeoutNs) {
  timespec timeout{static_cast<time_t>(timeoutNs / 1000000000ull), static_cast<long>(timeoutNs % 1000000000ull)};
  ::syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &timeout, nullptr, 0);
}

namespace {
std::atomic<bool> g_barrierRefused{false};
}  // namespace

bool barrierOnAllThreads() {
  if (g_barrierRefused.load(std::memory_order_relaxed)) return false;
  int saved = errno;
  long r = ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  if (r != 0 && errno == EPERM) {
    // Not registered yet (registration is per address space: a fork child registers again).
    if (::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0) {
      r = ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    }
  }
  if (r != 0) g_barrierRefused.store(true, std::memory_order_relaxed);
  errno = saved;
  return r == 0;
}

// Cached: getpid is a system call, and the free path asks for every large block (see
// background::onSlowFrees). Fork handlers forget it in the child.
static std::atomic<int> g_pid{0};

int processId() {
  int pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = static_cast<int>(::syscall(SYS_getpid));
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

void forgetProcessId() { g_pid.store(0, std::memory_order_relaxed); }

bool unshareEmptyDescriptorTable() {
  constexpr unsigned kUnshare = 1u << 1;  // CLOSE_RANGE_UNSHARE
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
  return ::syscall(SYS_close_range, 0u, ~0u, kUnshare) == 0;
}

int userfaultfdOpen(uint64_t features, int* error) {
#ifndef SYS_userfaultfd
  *error = ENOSYS;
  return -1;
#else
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    *error = errno;
    return -1;
  }
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(fd, UFFDIO_API, &api) != 0 || (api.features & features) != features) {
    *error = errno != 0 ? errno : EINVAL;
    ::close(fd);
    return -1;
  }
  return fd;
#endif
}

int ioctlRetry(int fd, unsigned long request, void* arg) {
  for (;;) {
    if (::ioctl(fd, request, arg) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return errno;
    // The address space is changing under the call (userfaultfd: a fork or mremap in
    // progress): let that finish rather than spin on the CPU it may need.
    yieldThread();
  }
}

static_assert(sizeof(ThreadExitKey) == sizeof(pthread_key_t));

bool createThreadExitKey(ThreadExitKey* key, void (*destructor)(void*)) {
  pthread_key_t k;
  if (pthread_key_create(&k, destructor) != 0) return false;
  *key = k;
  return true;
}

bool setThreadExitValue(ThreadExitKey key, void* value) { return pthread_setspecific(key, value) == 0; }

void registerForkHandlers(void (*prepare)(), void (*parent)(), void (*child)()) {
  pthread_atfork(prepare, parent, child);
}

bool startDaemonThread(void* (*fn)(void*), void* arg) {
  // The new thread inherits the creator's signal mask: block every asynchronous signal around
  // pthread_create. The kernel's mask is built by hand: the synchronous signals stay open (the
  // write barrier needs SIGSEGV), and so do glibc's internal ones (32: cancellation, 33: setxid,
  // which setuid() in a threaded process waits on).
  uint64_t block = ~uint64_t{0};
  const int keepOpen[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, 32, 33};
  for (int sig : keepOpen) block &= ~(uint64_t{1} << (sig - 1));
  uint64_t old = 0;
  if (::syscall(SYS_rt_sigprocmask, SIG_BLOCK, &block, &old, sizeof block) != 0) return false;
  pthread_attr_t attr;
  pthread_t thread;
  bool ok = pthread_attr_init(&attr) == 0;
  if (ok) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&thread, &attr, fn, arg) == 0;
    pthread_attr_destroy(&attr);
  }
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  return ok;
}

void nameThisThread(const char* name) { ::prctl(PR_SET_NAME, name, 0, 0, 0); }

int libcSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  return __sigaction(sig, act, old);
}

void* nextSymbol(const char* name) { return ::dlsym(RTLD_NEXT, name); }

void yieldSignalSafe() { ::syscall(SYS_sched_yield); }

void raiseSignal(int sig) { ::raise(sig); }

bool kernelSignalMask(int how, const sigset_t* set, sigset_t* old) {
  return ::syscall(SYS_rt_sigprocmask, how, set, old, sizeof(uint64_t)) == 0;
}

void resendToThisThread(int sig, const siginfo_t* info) {
  // The kernel lets a process give itself any siginfo.
  if (::syscall(SYS_rt_tgsigqueueinfo, ::syscall(SYS_getpid), ::syscall(SYS_gettid), sig, info) != 0) ::raise(sig);
}

void exitNow(int status) { ::_exit(status); }

void abortProcess() {
  // abort() may flush stdio (which can allocate); raise SIGABRT with the default action instead
  // when abort() itself is intercepted. abort() is what tests and debuggers expect, so use it.
  ::abort();
}

}  // namespace mesh::os
