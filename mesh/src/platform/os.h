// Platform layer: every system call libmesh makes goes through here.
//
// Contract: nothing in this file allocates with malloc, nothing asserts. Functions that can fail
// return false / nullptr / -1 and leave errno as the kernel set it, so callers decide whether a
// failure means ENOMEM for the user, skipping a mesh, or falling back to anonymous memory.
#pragma once

#include <csignal>
#include <cstddef>
#include <cstdint>

namespace mesh::os {

inline constexpr size_t kPageSize = 4096;
inline constexpr size_t kPageShift = 12;

// --- address space -------------------------------------------------------------------------
// Reserves len bytes of anonymous, private, read-write, not-committed memory (MAP_NORESERVE).
void* mapAnonymous(size_t len);
// Reserves len bytes of address space that costs no commit charge, even under strict
// overcommit (vm.overcommit_memory=2): inaccessible (PROT_NONE), or readable only (reads give
// zeros) with readable=true. hint is where it should go if that range is free (nullptr: the
// kernel chooses); exactly=true refuses any other place (nullptr then).
void* reserveAddressSpace(void* hint, size_t len, bool readable, bool exactly);
// Makes reserved pages read-write (this is where strict overcommit charges them).
bool commit(void* addr, size_t len);
// Gives the commit charge of [addr, addr+len) back: fresh inaccessible pages replace it.
bool decommit(void* addr, size_t len);
// The address-space limit (RLIMIT_AS) in bytes; SIZE_MAX when there is none.
size_t addressSpaceLimit();
// Whether the kernel refuses to overcommit (vm.overcommit_memory=2).
bool strictOvercommit();
// Replaces [addr, addr+len) with fresh anonymous zero pages (private, read-write, MAP_NORESERVE),
// whatever was mapped there (the old pages are dropped).
bool mapAnonymousFixed(void* addr, size_t len);
// Maps fd at offset over [addr, addr+len) (MAP_SHARED); addr == nullptr lets the kernel choose.
void* mapShared(void* addr, size_t len, int fd, size_t offset);
bool unmap(void* addr, size_t len);
bool protect(void* addr, size_t len, bool writable);
// Returns the pages' memory to the OS for anonymous private memory (MADV_DONTNEED).
bool discardAnonymous(void* addr, size_t len);
// A range of pages, laid out as a struct iovec.
struct PageRange {
  void* addr;
  size_t len;
};
// discardAnonymous for many ranges in one system call where the kernel can do that
// (process_madvise on this process through PIDFD_SELF, Linux 6.15+; the kernel then interrupts the other CPUs
// running the program once for all of them instead of once per range). True when every range
// was discarded; false when the call is not available or did not do all of them (the caller
// then discards them one by one; discarding a range twice is harmless).
bool discardAnonymousBatch(const PageRange* ranges, size_t count);
// Asks the kernel not to back the range with transparent huge pages.
bool noHugePages(void* addr, size_t len);

// --- the shared file behind meshed spans --------------------------------------------------
// Creates a file of len bytes that lives only in memory and returns a read-write shared view of
// all of it (MAP_NORESERVE: its pages are charged as they are written). No descriptor is left
// open: the memfd is closed once mapped, so the application never sees it, and, when no
// descriptor can be had (EMFILE), a shared anonymous mapping (the same kind of object, made
// without a descriptor) is used instead. nullptr when neither works.
void* createSharedFile(size_t len);
// Maps [to, to+len) onto the same file pages as the shared mapping at [from, from+len), replacing
// whatever was mapped at `to` (mremap with an old size of 0, which duplicates a shared mapping).
bool aliasSharedMapping(void* from, void* to, size_t len);
// Frees the file pages behind a shared mapping (MADV_REMOVE); every mapping of them reads
// zeros afterwards.
bool removeSharedPages(void* addr, size_t len);
// Allocates (writes in) the pages of a range up front (MADV_POPULATE_WRITE), so that copying into
// it cannot fault for want of memory. False on failure; true also when the kernel is too old to
// know the advice (callers then copy unchecked).
bool populateWritable(void* addr, size_t len);
int memfdCreate(const char* name);  // close-on-exec; -1 on failure
bool truncateFile(int fd, size_t len);
void closeFd(int fd);

// --- processes and files -------------------------------------------------------------------
bool makePipe(int fds[2]);  // close-on-exec
// Writes all of buf (retrying on EINTR / short writes). Async-signal-safe.
void writeAll(int fd, const void* buf, size_t len);
// Reads up to len bytes; -1 on error. Retries on EINTR.
long readSome(int fd, void* buf, size_t len);
// Reads a whole small file into buf (NUL-terminated); returns bytes read or -1.
long readSmallFile(const char* path, char* buf, size_t len);
// Reads a number from a /proc/sys style file; fallback when unreadable.
long readLongFile(const char* path, long fallback);
// Process-wide facts from /proc/self.
long mappingCount();           // lines in /proc/self/maps, -1 on error
long pssKiB();                 // Pss from /proc/self/smaps_rollup, -1 on error

// Counts the lines of /proc/self/maps a bounded number of bytes per call, so that counting
// tens of thousands of mappings (the kernel formats each line, about 0.7 us apiece: 20 ms for
// 28k) is spread over many short calls instead of stalling one caller.
class MapsCounter {
 public:
  // Reads up to about maxBytes more of the file. True when the count is finished: *count then
  // holds the number of lines, or -1 when the file could not be read (e.g. EMFILE).
  bool step(size_t maxBytes, long* count);
  bool inProgress() const { return fd_ >= 0; }
  // Forgets a count in progress (closes the file). A fork child calls it: the file it inherited
  // lists the parent's mappings.
  void reset();
  int fdForTest() const { return fd_; }

 private:
  bool stillOurs() const;
  int fd_ = -1;
  long lines_ = 0;
  uint64_t dev_ = 0, ino_ = 0;  // identity of the file opened (see stillOurs)
};

// Looks up an environment variable without allocating (getenv does not allocate in glibc,
// but we also need it before libc is fully initialised, so we scan environ ourselves).
const char* getEnv(const char* name);

uint64_t monotonicNs();
// CPU time used so far by the whole process (every thread, ours included) and by the calling thread.
uint64_t processCpuNs();
uint64_t threadCpuNs();
int currentThreadId();
void yieldThread();
// Sleeps until *word != expected or a short timeout passes (futex); async-signal-safe.
void futexWait(const int* word, int expected);
void futexWakeAll(const int* word);
// Sleeps until *word != expected, a wake-up, a signal or timeoutNs pass (futex).
void futexWaitFor(const int* word, int expected, uint64_t timeoutNs);
// A full memory barrier on every thread of this process that is running on a CPU now
// (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), registered on first use): afterwards each of them
// has made its earlier stores visible to the caller and sees the caller's earlier stores. Lets
// one rare side of a handshake pay for the fence the frequent side leaves out. No signal, no
// descriptor; errno is kept. False where the kernel or a seccomp filter refuses it (remembered).
bool barrierOnAllThreads();
// getpid(2), cached after the first call. Every fork child handler calls forgetProcessId() first,
// so code in a child made by fork() (glibc's, with its handlers) sees its own id; a child made
// by a raw clone system call, which runs no handlers, would see its parent's.
int processId();
void forgetProcessId();

// --- userfaultfd write protection (meshing/write_protect.cc) -----------------------------------
// Gives the calling thread a descriptor table of its own, empty: close_range(0, ~0U,
// CLOSE_RANGE_UNSHARE) takes no reference to any of the program's files. Descriptors the thread
// opens afterwards are invisible to the program (and out of reach of its close_range). False
// when the kernel cannot (before 5.9).
bool unshareEmptyDescriptorTable();
// Marks the calling thread as one with a table of its own: writeAll() to descriptors 0-2 then
// reopens the program's (through /proc/self/fd, for messages such as fatal()'s).
void setOwnDescriptorTable();
// A userfaultfd (close-on-exec, non-blocking) that also handles faults taken by the kernel
// (copy_to_user), with the API handshake done for `features`; -1 when unavailable (no
// privilege, no syscall, a feature missing). *error gets the errno of the failing step.
int userfaultfdOpen(uint64_t features, int* error);
// ioctl(fd, request, arg), retried on EINTR and, after a yield, on EAGAIN (transient: the
// address space is changing); returns the errno, 0 on success.
int ioctlRetry(int fd, unsigned long request, void* arg);

// --- threads -------------------------------------------------------------------------------
// Starts fn(arg) on a new detached thread that has every asynchronous signal blocked (so the
// application's signals go to its own threads). False when no thread can be created. May
// allocate through malloc (pthread_create does).
bool startDaemonThread(void* (*fn)(void*), void* arg);
// A per-thread slot whose destructor runs at thread exit with the slot's value (if non-null):
// pthread_key_create. False when the C library has no key left.
using ThreadExitKey = unsigned int;
bool createThreadExitKey(ThreadExitKey* key, void (*destructor)(void*));
// Sets the calling thread's value of key (pthread_setspecific).
bool setThreadExitValue(ThreadExitKey key, void* value);
// Fork handlers run by the C library's fork() (pthread_atfork); any may be nullptr.
void registerForkHandlers(void (*prepare)(), void (*parent)(), void (*child)());
// Names the calling thread (as seen in /proc/self/task/*/comm); at most 15 characters.
void nameThisThread(const char* name);

[[noreturn]] void abortProcess();
[[noreturn]] void exitNow(int status);  // _exit: no atexit handlers, no stdio flush

// --- signals -------------------------------------------------------------------------------
// The C library's own sigaction, even when libmesh interposes `sigaction`.
int libcSigaction(int sig, const struct sigaction* act, struct sigaction* old);
// Resolves a C library function libmesh interposes (dlsym RTLD_NEXT); nullptr if missing.
// May allocate on first use (dlsym), so never call it from the malloc path.
void* nextSymbol(const char* name);
void yieldSignalSafe();  // sched_yield, async-signal-safe
void raiseSignal(int sig);
// rt_sigprocmask on the calling thread's kernel mask, bypassing the C library's and libmesh's
// own wrappers (which keep SIGSEGV out of every mask). Only the first 64 signals are read and
// written: `old` must be initialised by the caller. Async-signal-safe.
bool kernelSignalMask(int how, const sigset_t* set, sigset_t* old);
// Sends sig to the calling thread with the given siginfo, as its sender sent it (a signal that
// was held back). Async-signal-safe.
void resendToThisThread(int sig, const siginfo_t* info);

}  // namespace mesh::os
