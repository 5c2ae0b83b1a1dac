// Child program of ops_test.cc (the background thread, signal reports, off-thread page release),
// run with MESH_BACKGROUND_THREAD / MESH_FREEPHYS_THREAD in its environment. Linked to libmesh.
//   mesh_ops_helper idle MS         fragment a heap, then idle up to MS ms without calling malloc
//                                   or free; print the mesh count and PSS before and after
//   mesh_ops_helper report          fragment, then raise SIGUSR1 and SIGUSR2
//   mesh_ops_helper handler-first   install an application SIGUSR1 handler, fragment, raise it
//   mesh_ops_helper handler-later   fragment (the report handler is installed), then install an
//                                   application SIGUSR1 handler and raise it
//   mesh_ops_helper fork MS         fragment, fork; the child fragments its own heap and idles
//   mesh_ops_helper freephys MS     free 64 MiB of large blocks, wait up to MS ms for their release
//   mesh_ops_helper pthread-exit    fragment, then end main() with pthread_exit
//   mesh_ops_helper raise-usr1      fragment, raise SIGUSR1, print "survived"
//   mesh_ops_helper usr1-early      raise SIGUSR1 before the background thread exists, print
//                                   "survived_early", then start the thread and wait for it
//   mesh_ops_helper fork-storm N    N forks while a thread churns and the background thread
//                                   meshes; every child allocates, checks and exits
//   mesh_ops_helper default-idle MS (default options) a small program's worth of work, then a
//                                   fragmented heap left idle up to MS ms
//   mesh_ops_helper default-fork MS (default options) free 8 MiB of blocks, fork; the child
//                                   fragments its own heap and idles
//   mesh_ops_helper decay MS        free 48 MiB of 1 MiB blocks, then idle up to MS ms without
//                                   calling malloc or free; print what was returned
//   mesh_ops_helper decay-free-path MS  the same, with small mallocs and frees every 50 ms
//   mesh_ops_helper raise-usr1-thread  fragment, wait for the thread, raise SIGUSR1
//   mesh_ops_helper quiet-thread MS a worker frees most of what it allocated, then sleeps in
//                                   read(); wait up to MS ms for its cache to be returned, then
//                                   wake it: it checks its objects and allocates again
//   mesh_ops_helper quiet-race MS   threads that pause for 0-50 ms between bursts for MS ms
//                                   while their caches are returned (MESH_QUIET_THREAD_MS=1)
//   mesh_ops_helper sparse-churn ROUNDS [THREADS]  32 MiB of 256-byte objects, 7 in 8 freed,
//                                   then ROUNDS replacements of random survivors by THREADS
//                                   threads (1: the main thread); print the arena in use before
//                                   and after the replacements
// Output is key=value lines written with write(2); while idle nothing allocates. The modes that
// wait for a signal report capture fd 2 and poll it for the report (ReportCapture), then copy
// it to stdout; exit code 5 (6 in handler-*) when it did not come within 20 s. Exit 0 on
// success, other codes name the failed step.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "harness/pss.h"
#include "mesh/mesh.h"
#include "ops_helper_util.h"

using namespace ops_helper;

namespace {

// A fragmented heap of 48-byte objects: kObjects allocated, about 1 in 8 kept (chosen by a
// fixed pseudo-random sequence), each filled with a byte derived from its index.
constexpr size_t kObjects = 200000;
constexpr size_t kSize = 48;
unsigned char* g_objects[kObjects];

unsigned char Mark(size_t i) { return static_cast<unsigned char>(i * 131 + 7); }

// Returns the mesh count read just before: a background thread may start meshing while this
// runs, so meshes are counted from there.
long g_fragmentPeakPss = -1;  // PSS with every object of Fragment() live, before its frees

unsigned long long Fragment() {
  unsigned long long meshes = Stats().mesh_count;
  for (size_t i = 0; i < kObjects; ++i) {
    g_objects[i] = static_cast<unsigned char*>(malloc(kSize));
    memset(g_objects[i], Mark(i), kSize);
  }
  g_fragmentPeakPss = harness::pss_kib();
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < kObjects; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (x % 8 != 0) {
      free(g_objects[i]);
      g_objects[i] = nullptr;
    }
  }
  return meshes;
}

bool Intact() {
  for (size_t i = 0; i < kObjects; ++i) {
    if (g_objects[i] == nullptr) continue;
    for (size_t j = 0; j < kSize; ++j) {
      if (g_objects[i][j] != Mark(i)) return false;
    }
  }
  return true;
}

// Waits up to ms until sig has a handler (libmesh's report handler, installed by the thread
// when it starts). Only queries: a query does not count as the application's own choice.
bool WaitForHandler(int sig, long ms) {
  for (long waited = 0;; waited += 10) {
    struct sigaction old {};
    sigaction(sig, nullptr, &old);
    if (old.sa_handler != SIG_DFL) return true;
    if (waited >= ms) return false;
    SleepMs(10);
  }
}

// Idles up to ms, stopping early once there were more than 50 meshes since `meshesAtStart`
// (what Fragment() returned), PSS fell by wantDropKiB from the fragmented heap's peak and is not
// above its value now: what the tests assert, so that a reading taken while a service thread
// starts (its stack) is followed by another rather than reported. Prints the mesh count at the
// start, now (before) and at the end (after). Exit codes: 3 contents damaged.
int Idle(const char* who, long ms, unsigned long long meshesAtStart, long wantDropKiB = 1024) {
  mesh_stats before = Stats();
  Say("%s_mesh_start=%llu\n", who, meshesAtStart);
  long pssBefore = harness::pss_kib();
  long waited = 0;
  mesh_stats after = before;
  long pssAfter = pssBefore;
  while (waited < ms) {
    SleepMs(50);
    waited += 50;
    after = Stats();
    pssAfter = harness::pss_kib();
    if (after.mesh_count > meshesAtStart + 50 && pssAfter < g_fragmentPeakPss - wantDropKiB &&
        pssAfter <= pssBefore) {
      break;
    }
  }
  Say("%s_mesh_before=%llu\n%s_mesh_after=%llu\n", who, (unsigned long long)before.mesh_count, who,
      (unsigned long long)after.mesh_count);
  Say("%s_pss_before=%ld\n%s_pss_after=%ld\n%s_idle_ms=%ld\n%s_fragment_peak_pss=%ld\n", who, pssBefore, who,
      pssAfter, who, waited, who, g_fragmentPeakPss);
  return Intact() ? 0 : 3;
}

int IdleMode(long ms) {
  Say("threads_at_main=%ld\n", Threads());
  WarmUp();
  Say("threads_after_warmup=%ld\n", Threads());
  unsigned long long meshes = Fragment();
  return Idle("idle", ms, meshes);
}

// Default options: the warm-up (a small program) must not start the thread, the fragmented heap
// must (it has 8 MiB to give back), and the idle process must mesh and shrink.
int DefaultIdleMode(long ms) {
  Say("threads_at_main=%ld\n", Threads());
  WarmUp();
  SleepMs(300);  // a thread started by the warm-up would be there by now
  Say("threads_after_warmup=%ld\nthread_stat_after_warmup=%llu\nwp_threads_after_warmup=%ld\n", Threads(),
      (unsigned long long)Stats().background_thread, WpThreads());
  unsigned long long meshes = Fragment();
  const char* mode = getenv("MESH_BACKGROUND_THREAD");
  WaitForThreads(2, mode != nullptr && strcmp(mode, "0") == 0 ? 0 : 10000);
  Say("threads_after_fragment=%ld\nwp_threads_after_fragment=%ld\nkernel_writes_wait=%llu\n", Threads(),
      WpThreads(), (unsigned long long)Stats().kernel_writes_wait);
  int rc = Idle("idle", ms, meshes, 3072);
  mesh_stats s = Stats();
  Say("thread_stat=%llu\npaced_meshes=%llu\npaced_mesh_ns=%llu\nmeshable_free_kb=%llu\n",
      (unsigned long long)s.background_thread, (unsigned long long)s.paced_meshes,
      (unsigned long long)s.paced_mesh_ns, (unsigned long long)(s.meshable_free_bytes >> 10));
  return rc;
}

// Allocates n blocks of 1 MiB and writes every byte.
template <size_t N>
void AllocBlocks(void* (&blocks)[N]) {
  for (auto& b : blocks) {
    b = malloc(1 << 20);
    memset(b, 0x5a, 1 << 20);
  }
}

// What FreeBlocksAndWait saw: PSS with the blocks, statistics before and after the frees and at
// the end, and how long it waited.
struct BlockRun {
  long pssFull;
  mesh_stats before, freed, after;
  long waited;
};

// Allocates N blocks of 1 MiB, frees them, then waits up to ms in steps of stepMs (calling
// each() after every step) until counter(stats) rose by target bytes.
template <size_t N, typename Counter, typename Each>
BlockRun FreeBlocksAndWait(void* (&blocks)[N], long ms, long stepMs, uint64_t target, Counter counter, Each each) {
  AllocBlocks(blocks);
  BlockRun r{};
  r.pssFull = harness::pss_kib();
  r.before = Stats();
  for (auto& b : blocks) free(b);
  r.after = r.freed = Stats();
  while (r.waited < ms && counter(r.after) < counter(r.before) + target) {
    SleepMs(stepMs);
    r.waited += stepMs;
    each();
    r.after = Stats();
  }
  return r;
}

// Frees 48 MiB of 1 MiB blocks (kept by the arena for reuse, below MESH_MAX_DIRTY_MB) and idles
// up to ms without allocating (churn: with small mallocs and frees every 50 ms instead),
// stopping early once 40 MiB went back to the OS.
int Decay(long ms, bool churn) {
  static void* blocks[48];
  BlockRun r = FreeBlocksAndWait(blocks, ms, 50, 40u << 20, [](const mesh_stats& s) { return s.decayed_bytes; },
                                 [churn] {
                                   if (churn) WarmUp();
                                 });
  Say("dirty_after_free_mb=%llu\n", (unsigned long long)(r.freed.dirty_bytes >> 20));
  Say("decayed_mb=%llu\nreleased_mb=%llu\ndirty_mb=%llu\n",
      (unsigned long long)((r.after.decayed_bytes - r.before.decayed_bytes) >> 20),
      (unsigned long long)((r.after.released_bytes - r.before.released_bytes) >> 20),
      (unsigned long long)(r.after.dirty_bytes >> 20));
  Say("pss_full=%ld\npss_after=%ld\nwaited_ms=%ld\nthreads=%ld\n", r.pssFull, harness::pss_kib(), r.waited, Threads());
  return 0;
}

// The background thread prints the signal reports to fd 2. While a mode waits for one, fd 2 is a
// memory file of ours, read back (without allocating) until the report's text is there or a
// deadline passes; at the end everything captured goes to stdout, where the test reads it.
class ReportCapture {
 public:
  ReportCapture() {
    saved_ = dup(2);
    fd_ = memfd_create("ops-helper-stderr", MFD_CLOEXEC);
    if (saved_ >= 0 && fd_ >= 0) dup2(fd_, 2);
  }
  ~ReportCapture() {
    if (saved_ >= 0) dup2(saved_, 2);
    size_t n = Read();
    for (size_t done = 0; done < n;) {
      ssize_t w = write(1, buf_ + done, n - done);
      if (w <= 0) break;
      done += size_t(w);
    }
    if (fd_ >= 0) close(fd_);
    if (saved_ >= 0) close(saved_);
  }
  ReportCapture(const ReportCapture&) = delete;
  ReportCapture& operator=(const ReportCapture&) = delete;

  // Waits up to ms for a whole report (from its "(SIGUSRn)" header to the end of its
  // "Background thread:" line) that starts at or after byte `from` of the captured text. Returns
  // the offset just past it, or -1 when none came in time.
  long WaitForReport(const char* sig, long from, long ms) {
    char header[32];
    snprintf(header, sizeof header, "(%s)\n", sig);
    for (long waited = 0;; waited += 10) {
      size_t n = Read();
      const char* start = from <= long(n) ? strstr(buf_ + from, header) : nullptr;
      const char* last = start ? strstr(start, "Background thread:") : nullptr;
      const char* end = last ? strchr(last, '\n') : nullptr;
      if (end != nullptr) return long(end + 1 - buf_);
      if (waited >= ms) return -1;
      SleepMs(10);
    }
  }

 private:
  size_t Read() {
    ssize_t n = fd_ >= 0 ? pread(fd_, buf_, sizeof buf_ - 1, 0) : -1;
    buf_[n > 0 ? n : 0] = '\0';
    return n > 0 ? size_t(n) : 0;
  }

  int saved_ = -1, fd_ = -1;
  static char buf_[1 << 18];
};
char ReportCapture::buf_[1 << 18];

constexpr long kReportMs = 20000;  // a report not there by then is missing

int Report() {
  WarmUp();
  Fragment();
  if (!WaitForThreads(2, 5000) || !WaitForHandler(SIGUSR1, 5000) || !WaitForHandler(SIGUSR2, 5000)) return 4;
  {
    ReportCapture capture;
    raise(SIGUSR1);
    long at = capture.WaitForReport("SIGUSR1", 0, kReportMs);
    if (at < 0) return 5;
    raise(SIGUSR2);
    at = capture.WaitForReport("SIGUSR2", at, kReportMs);
    if (at < 0) return 5;
    // The detailed report's class lines follow its summary, with no end mark: a summary asked
    // for now is printed after them (the thread has taken the SIGUSR2 request already).
    raise(SIGUSR1);
    if (capture.WaitForReport("SIGUSR1", at, kReportMs) < 0) return 5;
  }
  Say("report_done\n");
  return Intact() ? 0 : 3;
}

volatile sig_atomic_t g_appHandlerRuns = 0;
void AppHandler(int) { g_appHandlerRuns = g_appHandlerRuns + 1; }

void InstallAppHandler() {
  struct sigaction act {};
  act.sa_handler = AppHandler;
  sigemptyset(&act.sa_mask);
  sigaction(SIGUSR1, &act, nullptr);
}

int Handler(bool first) {
  if (first) InstallAppHandler();
  WarmUp();
  Fragment();
  // The thread installs its handlers (where it may) when it starts.
  if (!WaitForThreads(2, 5000) || !WaitForHandler(SIGUSR2, 5000)) return 4;
  if (!first) {
    if (!WaitForHandler(SIGUSR1, 5000)) return 4;
    InstallAppHandler();
  }
  long reported;
  {
    // A report of SIGUSR1 by libmesh (wrong: the application took the signal) would come before
    // the SIGUSR2 report raised after it, so waiting for that one is enough.
    ReportCapture capture;
    raise(SIGUSR1);  // runs the application's handler before raise() returns
    raise(SIGUSR2);  // still ours
    reported = capture.WaitForReport("SIGUSR2", 0, kReportMs);
  }
  Say("app_handler_runs=%d\n", int(g_appHandlerRuns));
  if (reported < 0) return 6;
  return g_appHandlerRuns == 1 ? 0 : 5;
}

// Frees 8 MiB of 1 MiB blocks: with default options, enough free memory to start the thread
// (without fragmenting the small-object heap that the fork child fragments).
void FreeBlocks() {
  static void* blocks[8];
  AllocBlocks(blocks);
  for (auto& b : blocks) free(b);
}

// freeBlocks: default options, where freed memory (not the warm-up) starts the thread.
int Fork(long ms, bool freeBlocks) {
  WarmUp();
  if (freeBlocks) FreeBlocks();
  if (!WaitForThreads(2, freeBlocks ? 10000 : 5000)) return 4;
  pid_t pid = fork();
  if (pid < 0) return 6;
  if (pid == 0) {
    Say("child_threads_at_fork=%ld\n", Threads());
    unsigned long long meshes = Fragment();
    bool restarted = WaitForThreads(2, 10000);
    Say("child_threads_after_fragment=%ld\n", Threads());
    int rc = Idle("child", ms, meshes);
    _exit(rc != 0 ? rc : restarted ? 0 : 7);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return 8;
  Say("child_status=%d\n", status);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 9;
  // The parent keeps its thread and can still compact.
  unsigned long long meshes = Fragment();
  return Idle("parent", ms, meshes);
}

int FreePhys(long ms) {
  WarmUp();
  if (EnvOn("MESH_FREEPHYS_THREAD") && !WaitForThreads(2, 5000)) return 4;
  static void* blocks[64];
  BlockRun r = FreeBlocksAndWait(blocks, ms, 20, 48u << 20, [](const mesh_stats& s) { return s.released_bytes; }, [] {});
  Say("pid=%d\n", int(getpid()));
  Say("released_mb=%llu\ndirty_mb=%llu\n", (unsigned long long)((r.after.released_bytes - r.before.released_bytes) >> 20),
      (unsigned long long)(r.after.dirty_bytes >> 20));
  Say("pss_full=%ld\npss_after=%ld\nwaited_ms=%ld\n", r.pssFull, harness::pss_kib(), r.waited);
  return 0;
}

int PthreadExit() {
  WarmUp();
  Fragment();
  if (!WaitForThreads(2, 5000)) return 4;
  Say("main_exits\n");
  pthread_exit(nullptr);
}

// waitForThread: with default options, raise only once the thread runs (it must not have
// taken SIGUSR1 over: only MESH_BACKGROUND_THREAD=1 prints reports).
int RaiseUsr1(bool waitForThread) {
  WarmUp();
  Fragment();
  if (EnvOn("MESH_BACKGROUND_THREAD") && !WaitForHandler(SIGUSR1, 5000)) return 4;
  if (waitForThread && !WaitForThreads(2, 10000)) return 4;
  long reported;
  {
    ReportCapture capture;
    raise(SIGUSR1);  // with the default action, the process ends here
    // Still alive: a handler took it. Only libmesh's report handler may have (the test checks
    // the output for the report); without it there is nothing to wait for.
    reported = EnvOn("MESH_BACKGROUND_THREAD") ? capture.WaitForReport("SIGUSR1", 0, kReportMs) : 0;
  }
  Say("survived\n");
  return reported < 0 ? 5 : 0;
}

// A report asked for before the thread runs: the process survives, and the thread prints the
// report once it has started.
int Usr1Early() {
  free(malloc(16));  // libmesh is initialised, as in any program after its first malloc
  if (Threads() != 1) return 4;
  ReportCapture capture;
  raise(SIGUSR1);
  Say("survived_early\n");
  WarmUp();
  Fragment();
  if (!WaitForThreads(2, 5000)) return 4;
  return capture.WaitForReport("SIGUSR1", 0, kReportMs) < 0 ? 5 : 0;
}

std::atomic<bool> g_stopChurn{false};

// Keeps one size class fragmented and freed in a loop, so the background thread always has
// meshing to do.
void* Churn(void*) {
  static void* slots[20000];
  uint64_t x = 88172645463325252ull;
  while (!g_stopChurn.load()) {
    for (auto& s : slots) {
      s = malloc(64);
      memset(s, 0x33, 64);
    }
    for (auto& s : slots) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      if (x % 8 != 0) {
        free(s);
        s = nullptr;
      }
    }
    SleepMs(2);
    for (auto& s : slots) {
      if (s != nullptr && static_cast<unsigned char*>(s)[63] != 0x33) abort();
      free(s);
    }
  }
  return nullptr;
}

// Exit codes: 10 a child failed or hung, 11 the churn thread could not start.
int ForkStorm(long n) {
  WarmUp();
  Fragment();
  pthread_t churn;
  if (pthread_create(&churn, nullptr, Churn, nullptr) != 0) return 11;
  int failed = 0;
  for (long i = 0; i < n; ++i) {
    SleepMs(5);
    pid_t pid = fork();
    if (pid == 0) {
      // The child: the heap as of the fork, usable at once.
      static void* p[1000];
      for (auto& q : p) q = malloc(100);
      for (auto& q : p) free(q);
      _exit(Intact() ? 0 : 3);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  g_stopChurn.store(true);
  pthread_join(churn, nullptr);
  Say("forks=%ld failed=%d meshes=%llu\n", n, failed, (unsigned long long)Stats().mesh_count);
  return failed == 0 && Intact() ? 0 : 10;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Say("usage: mesh_ops_helper idle MS|report|handler-first|handler-later|fork MS|freephys MS|"
        "pthread-exit|raise-usr1|usr1-early|fork-storm N|default-idle MS|default-fork MS|decay MS|"
        "decay-free-path MS|raise-usr1-thread|quiet-thread MS|quiet-race MS|sparse-churn ROUNDS [THREADS]\n");
    return 64;
  }
  long ms = argc > 2 ? strtol(argv[2], nullptr, 10) : 0;
  if (strcmp(argv[1], "idle") == 0) return IdleMode(ms);
  if (strcmp(argv[1], "report") == 0) return Report();
  if (strcmp(argv[1], "handler-first") == 0) return Handler(true);
  if (strcmp(argv[1], "handler-later") == 0) return Handler(false);
  if (strcmp(argv[1], "fork") == 0) return Fork(ms, false);
  if (strcmp(argv[1], "default-fork") == 0) return Fork(ms, true);
  if (strcmp(argv[1], "default-idle") == 0) return DefaultIdleMode(ms);
  if (strcmp(argv[1], "decay") == 0) return Decay(ms, false);
  if (strcmp(argv[1], "decay-free-path") == 0) return Decay(ms, true);
  if (strcmp(argv[1], "raise-usr1-thread") == 0) return RaiseUsr1(true);
  if (strcmp(argv[1], "freephys") == 0) return FreePhys(ms);
  if (strcmp(argv[1], "pthread-exit") == 0) return PthreadExit();
  if (strcmp(argv[1], "raise-usr1") == 0) return RaiseUsr1(false);
  if (strcmp(argv[1], "usr1-early") == 0) return Usr1Early();
  if (strcmp(argv[1], "fork-storm") == 0) return ForkStorm(ms);
  if (strcmp(argv[1], "quiet-thread") == 0) return QuietThread(ms);
  if (strcmp(argv[1], "quiet-race") == 0) return QuietRace(ms);
  if (strcmp(argv[1], "sparse-churn") == 0) return SparseChurn(ms, argc > 3 ? strtol(argv[3], nullptr, 10) : 1);
  Say("unknown mode %s\n", argv[1]);
  return 64;
}
