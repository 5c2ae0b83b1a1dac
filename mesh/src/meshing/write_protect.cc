#include "meshing/write_protect.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <atomic>

#include "common/lock.h"
#include "platform/os.h"

namespace mesh::wp {
namespace {

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)  // Linux 6.4; Debian 12's headers are 6.1's
#endif
// Write protection of shmem (the heap's file): Linux 5.19.
constexpr uint64_t kFeatures = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
// Write protection of anonymous pages never touched (a span may hold live objects not written
// yet): without it, such pages are populated before they are protected, else a first write
// there would go to a fresh page that the remap then drops.
constexpr uint64_t kUnpopulated = UFFD_FEATURE_WP_UNPOPULATED;
constexpr uint64_t kIdleCheckNs = 1000000000ull;
constexpr uint64_t kStartWaitNs = 100000000ull;  // start() waits at most this long for the thread

std::atomic<int> g_pid{0};          // process in which the service is ready
std::atomic<int> g_startingPid{0};  // process in which some thread is starting it
std::atomic<bool> g_failed{false};  // unavailable for good (same kernel and privileges in a child)
std::atomic<int> g_error{0};
std::atomic<bool> g_enabled{true};
std::atomic<uint64_t> g_waits{0};
std::atomic<uint64_t> g_cpuNs{0};  // the service thread's CPU time as its last job ended
bool (*g_alive)() = nullptr;
int g_fd = -1;                       // in the service thread's own descriptor table
bool g_protectsUnpopulated = false;  // both written by the thread before it publishes g_pid
thread_local bool t_onService = false;

Mutex g_lock;  // one job at a time: held by its poster until the job is done
void (*g_job)(void*) MESH_GUARDED_BY(g_lock) = nullptr;
void* g_jobArg MESH_GUARDED_BY(g_lock) = nullptr;
std::atomic<int> g_posted{0};  // futex word: bumped for every job
std::atomic<int> g_done{0};    // futex word: set to g_posted's value when the job is done
std::atomic<int> g_waiting{0};  // threads in run()

bool runningHere() {
  int pid = g_pid.load(std::memory_order_acquire);
  return pid != 0 && pid == os::processId();
}

// Reads the fault messages queued so far (each is a write waiting on a protected range); the
// waiters stay asleep until their range is woken.
uint64_t drainMessages() {
  uint64_t n = 0;
  uffd_msg msgs[16];
  for (;;) {
    long r = os::readSome(g_fd, msgs, sizeof msgs);
    if (r <= 0) return n;
    for (long i = 0; i < r / static_cast<long>(sizeof msgs[0]); ++i) n += msgs[i].event == UFFD_EVENT_PAGEFAULT;
  }
}

uffdio_range toRange(const Range& r) { return uffdio_range{reinterpret_cast<uint64_t>(r.addr), r.len}; }

// Writable again (waking the writers: UFFDIO_WRITEPROTECT does unless told not to), unregistered.
void unprotectOne(const Range& r) {
  uffdio_writeprotect off{toRange(r), 0};
  os::ioctlRetry(g_fd, UFFDIO_WRITEPROTECT, &off);
  uffdio_range range = toRange(r);
  os::ioctlRetry(g_fd, UFFDIO_UNREGISTER, &range);
}

int protectOne(const Range& r) {
  if (!g_protectsUnpopulated) os::populateWritable(r.addr, r.len);
  uffdio_register reg{};
  reg.range = toRange(r);
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (int err = os::ioctlRetry(g_fd, UFFDIO_REGISTER, &reg)) return err;
  uffdio_writeprotect on{toRange(r), UFFDIO_WRITEPROTECT_MODE_WP};
  if (int err = os::ioctlRetry(g_fd, UFFDIO_WRITEPROTECT, &on)) {
    uffdio_range range = toRange(r);
    os::ioctlRetry(g_fd, UFFDIO_UNREGISTER, &range);
    return err;
  }
  return 0;
}

// Ends the thread when the program is gone and no job is waiting. Jobs are posted under g_lock,
// which a poster holds until its job is done: taking it (without waiting: a poster may hold it)
// and finding nothing posted means none can come.
bool endIfIdle(int seen) MESH_NO_THREAD_SAFETY_ANALYSIS {
  if (g_alive == nullptr || g_alive() || !g_lock.tryLock()) return false;
  bool idle = g_posted.load(std::memory_order_acquire) == seen;
  if (idle) g_pid.store(0, std::memory_order_release);
  g_lock.unlock();
  return idle;
}

void* serviceMain(void*) MESH_NO_THREAD_SAFETY_ANALYSIS {
  os::nameThisThread("mesh-wp");
  int me = os::processId();
  int error = 0, fd = -1;
  if (!os::unshareEmptyDescriptorTable()) {
    error = errno;
  } else {
    os::setOwnDescriptorTable();
    fd = os::userfaultfdOpen(kFeatures | kUnpopulated, &error);
    g_protectsUnpopulated = fd >= 0;
    if (fd < 0 && error == EINVAL) fd = os::userfaultfdOpen(kFeatures, &error);
  }
  if (fd < 0) {
    g_error.store(error != 0 ? error : EINVAL, std::memory_order_relaxed);
    g_failed.store(true, std::memory_order_release);
    g_startingPid.store(0, std::memory_order_release);
    os::futexWakeAll(reinterpret_cast<const int*>(&g_startingPid));
    return nullptr;
  }
  g_fd = fd;
  int seen = g_posted.load(std::memory_order_acquire);
  g_pid.store(me, std::memory_order_release);
  g_startingPid.store(0, std::memory_order_release);
  os::futexWakeAll(reinterpret_cast<const int*>(&g_startingPid));
  for (;;) {
    int posted = g_posted.load(std::memory_order_acquire);
    if (posted != seen) {
      // The poster holds g_lock until we answer: the job is ours to read.
      t_onService = true;
      g_job(g_jobArg);
      t_onService = false;
      g_cpuNs.store(os::threadCpuNs(), std::memory_order_relaxed);
      seen = posted;
      g_done.store(posted, std::memory_order_release);
      os::futexWakeAll(reinterpret_cast<const int*>(&g_done));
      continue;
    }
    if (endIfIdle(seen)) break;
    os::futexWaitFor(reinterpret_cast<const int*>(&g_posted), seen, kIdleCheckNs);
  }
  // Closing it releases every range and wakes every waiter (none: no job runs). It is in our own
  // table: the program's descriptors are not.
  g_fd = -1;
  os::closeFd(fd);
  return nullptr;
}

// Waits (at most kStartWaitNs) until the thread being started in process me is ready or failed.
void waitForStart(int me) {
  uint64_t deadline = os::monotonicNs() + kStartWaitNs;
  while (g_startingPid.load(std::memory_order_acquire) == me && os::monotonicNs() < deadline) {
    os::futexWaitFor(reinterpret_cast<const int*>(&g_startingPid), me, 1000000);
  }
}

}  // namespace

void start(bool (*alive)()) {
  if (g_failed.load(std::memory_order_acquire) || runningHere()) return;
  int me = os::processId();
  int holder = g_startingPid.load(std::memory_order_acquire);
  if (holder == me || !g_startingPid.compare_exchange_strong(holder, me, std::memory_order_acq_rel)) {
    waitForStart(me);  // another thread starts it
    return;
  }
  g_alive = alive;
  // The thread clears g_startingPid once it is ready or has failed. Wait for that (a fraction
  // of a millisecond), so that the meshes this caller is about to start already use it.
  if (!os::startDaemonThread(serviceMain, nullptr)) {
    g_error.store(EAGAIN, std::memory_order_relaxed);
    g_startingPid.store(0, std::memory_order_release);
    return;
  }
  waitForStart(me);
}

void setEnabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }

bool active() { return g_enabled.load(std::memory_order_relaxed) && runningHere(); }

bool run(void (*job)(void*), void* arg) MESH_NO_THREAD_SAFETY_ANALYSIS {
  if (!active() || t_onService) return false;
  struct Waiting {
    Waiting() { g_waiting.fetch_add(1, std::memory_order_relaxed); }
    ~Waiting() { g_waiting.fetch_sub(1, std::memory_order_relaxed); }
  } waiting;
  LockGuard guard(g_lock);
  if (!runningHere()) return false;  // the thread ended meanwhile
  g_job = job;
  g_jobArg = arg;
  int ticket = g_posted.fetch_add(1, std::memory_order_acq_rel) + 1;
  os::futexWakeAll(reinterpret_cast<const int*>(&g_posted));
  for (;;) {
    int done = g_done.load(std::memory_order_acquire);
    if (done == ticket) return true;
    os::futexWaitFor(reinterpret_cast<const int*>(&g_done), done, kIdleCheckNs);
  }
}

bool waiting() { return g_waiting.load(std::memory_order_relaxed) > 0; }

bool onService() { return t_onService && g_enabled.load(std::memory_order_relaxed); }

bool protect(const Range* ranges, int count) {
  if (count <= 0 || count > kMaxRanges || !onService()) return false;
  for (int i = 0; i < count; ++i) {
    if (protectOne(ranges[i]) == 0) continue;
    for (int u = 0; u < i; ++u) unprotectOne(ranges[u]);
    return false;
  }
  return true;
}

uint64_t finish(const Range* ranges, const bool* remapped, int count) {
  if (!t_onService) return 0;
  // Every write that waits on a range queued its message before the range was remapped (the
  // remap takes the address-space lock that the fault holds while it queues): when none is
  // queued now, no write waits on a remapped range.
  uint64_t waited = drainMessages();
  for (int i = 0; i < count; ++i) {
    if (!remapped[i]) {
      unprotectOne(ranges[i]);
    } else if (waited > 0) {
      uffdio_range range = toRange(ranges[i]);
      os::ioctlRetry(g_fd, UFFDIO_WAKE, &range);
    }
  }
  g_waits.fetch_add(waited, std::memory_order_relaxed);
  return waited;
}

uint64_t waits() { return g_waits.load(std::memory_order_relaxed); }

uint64_t cpuNs() { return g_cpuNs.load(std::memory_order_relaxed); }

const char* unavailableReason() {
  if (runningHere()) return nullptr;
  if (!g_failed.load(std::memory_order_acquire)) {
    return g_error.load(std::memory_order_relaxed) == EAGAIN ? "no thread" : nullptr;
  }
  switch (g_error.load(std::memory_order_relaxed)) {
    case EPERM:
    case EACCES:
      return "no permission to handle kernel faults: vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE";
    case ENOSYS:
      return "no userfaultfd in this kernel, or a seccomp filter forbids it";
    case EINVAL:
      return "the kernel lacks write protection of shmem (5.19+)";
    default:
      return "userfaultfd failed";
  }
}

void afterForkInChild() {
  g_pid.store(0, std::memory_order_relaxed);
  g_startingPid.store(0, std::memory_order_relaxed);
  g_lock.resetAfterFork();
  g_done.store(g_posted.load(std::memory_order_relaxed), std::memory_order_relaxed);
  g_cpuNs.store(0, std::memory_order_relaxed);
}

}  // namespace mesh::wp
