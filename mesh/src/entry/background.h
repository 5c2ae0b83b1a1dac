// The background service thread: MESH_BACKGROUND_THREAD (meshing paced by fragmentation and the
// decay of free pages, every MESH_PERIOD_MS; with 1, statistics on SIGUSR1/SIGUSR2) and
// MESH_FREEPHYS_THREAD (pages freed by the application's threads are returned to the OS here
// instead).
//
// One thread serves both options. It is started lazily, from the free path (never from a
// constructor), so a program is still single-threaded when main() starts: with
// MESH_BACKGROUND_THREAD=1 or MESH_FREEPHYS_THREAD=1 by the first slow frees, by default (2)
// only once the heap holds memory worth giving back (meshable free space in partly used spans
// plus freed pages, 4 MiB), so a program that allocates little never gets one. It does not
// survive fork(): a child starts its own on its own free path (under the same rule), and until
// then frees mesh and return memory themselves. It never holds the process alive: it exits when
// no application thread with a heap is left (main() ended with pthread_exit), and exit() simply
// ends it.
#pragma once

#include <csignal>
#include <cstddef>
#include <cstdint>

namespace mesh::background {

// Called on the free path every 256th slow free, at the top level of the allocator (no
// allocator lock held): starts the thread when an option asks for it (or, by default, the heap
// makes it worthwhile) and it does not run in this process yet, and wakes it when it idles.
// Returns what the thread does, so the free path must not: kThreadMeshes (it paces meshing)
// and kThreadDecays (it returns unused free pages). Cheap: a few loads and a getpid(2) once
// the thread runs.
inline constexpr int kThreadMeshes = 1;
inline constexpr int kThreadDecays = 2;
int onSlowFrees();

// Whether the thread runs in this process (statistics).
bool runningInThisProcess();
// How many caches of quiet threads the thread returned (MESH_QUIET_THREAD_MS).
uint64_t quietCacheReturns();
// Returns the cache of every other thread now, as for a quiet thread, whatever the thread is
// doing: the number returned, and in *busy the number left alone because their owner was inside
// the allocator (0 and 0 under ThreadSanitizer, where the feature is off). For tests.
size_t returnOtherCachesForTest(size_t* busy);

// Called at start-up once the options are read: with MESH_BACKGROUND_THREAD on, the report
// handlers are installed now (where the application has not claimed the signal), so that a
// report signal never ends the process. One that arrives before the thread runs waits for it.
void onOptionsLoaded();

// Whether sig is SIGUSR1 or SIGUSR2, the report signals.
inline bool isReportSignal(int sig) { return sig == SIGUSR1 || sig == SIGUSR2; }

// Held around an application's sigaction()/signal() for a report signal (interpose.cc): from
// then on libmesh never installs its report handler for that signal, and the application's
// disposition, whatever it is (SIG_DFL included), wins.
class AppSignalClaim {
 public:
  explicit AppSignalClaim(int sig);
  ~AppSignalClaim();
  AppSignalClaim(const AppSignalClaim&) = delete;
  AppSignalClaim& operator=(const AppSignalClaim&) = delete;

 private:
  bool locked_;
};

}  // namespace mesh::background
