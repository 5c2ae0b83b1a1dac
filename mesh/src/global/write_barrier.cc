#include "global/write_barrier.h"

#include <cerrno>
#include <cstring>

#include "platform/os.h"

namespace mesh::barrier {
namespace {

std::atomic<uint64_t> g_epoch{0};
std::atomic<bool> g_installed{false};
std::atomic<uintptr_t> g_base{0};
std::atomic<size_t> g_bytes{0};
// The application's disposition. Written by sigaction() calls (rare), read by the handler; the
// sequence counter lets the handler copy it consistently without a lock.
struct sigaction g_chained;
std::atomic<uint32_t> g_chainedSeq{0};
// Consecutive arena faults of this thread while no mesh was running (a real fault repeats).
__thread uint32_t t_idleFaults __attribute__((tls_model("initial-exec"))) = 0;
constexpr uint32_t kMaxIdleFaults = 1000;

void readChained(struct sigaction* out) {
  for (;;) {
    uint32_t before = g_chainedSeq.load(std::memory_order_acquire);
    if (before & 1) continue;
    std::memcpy(out, &g_chained, sizeof *out);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (g_chainedSeq.load(std::memory_order_relaxed) == before) return;
  }
}

void forward(int sig, siginfo_t* info, void* ctx) {
  struct sigaction app;
  readChained(&app);
  if (app.sa_flags & SA_SIGINFO) {
    if (app.sa_sigaction != nullptr) {
      app.sa_sigaction(sig, info, ctx);
      return;
    }
  } else if (app.sa_handler != SIG_DFL && app.sa_handler != SIG_IGN) {
    app.sa_handler(sig);
    return;
  }
  // Default action: restore it and let the fault happen again (or re-send a sent signal).
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  os::libcSigaction(sig, &dfl, nullptr);
  if (info == nullptr || info->si_code <= 0) os::raiseSignal(sig);
}

void onSegv(int sig, siginfo_t* info, void* ctx) {
  int savedErrno = errno;
  const void* addr = info != nullptr ? info->si_addr : nullptr;
  if (info != nullptr && info->si_code > 0 && inArena(addr, 1)) {
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
  forward(sig, info, ctx);
}

}  // namespace

bool install(const void* arenaBase, size_t arenaBytes) {
  // The range is that of the arena meshing now (the process heap; in unit tests, the heap
  // instance under test).
  g_base.store(reinterpret_cast<uintptr_t>(arenaBase), std::memory_order_relaxed);
  g_bytes.store(arenaBytes, std::memory_order_relaxed);
  if (g_installed.load(std::memory_order_acquire)) return true;
  struct sigaction act, old;
  std::memset(&act, 0, sizeof act);
  act.sa_sigaction = onSegv;
  act.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
  sigemptyset(&act.sa_mask);
  g_chainedSeq.fetch_add(1, std::memory_order_acq_rel);
  if (os::libcSigaction(SIGSEGV, &act, &old) != 0) {
    g_chainedSeq.fetch_add(1, std::memory_order_acq_rel);
    return false;
  }
  std::memcpy(&g_chained, &old, sizeof old);
  g_chainedSeq.fetch_add(1, std::memory_order_release);
  g_installed.store(true, std::memory_order_release);
  return true;
}

bool installed() { return g_installed.load(std::memory_order_acquire); }

void begin() { g_epoch.fetch_add(1, std::memory_order_seq_cst); }
void end() { g_epoch.fetch_add(1, std::memory_order_seq_cst); }
bool meshing() { return (g_epoch.load(std::memory_order_acquire) & 1) != 0; }
uint64_t epoch() { return g_epoch.load(std::memory_order_acquire); }

void waitWhileMeshing() {
  while (meshing()) os::yieldSignalSafe();
}

bool inArena(const void* p, size_t len) {
  uintptr_t base = g_base.load(std::memory_order_relaxed);
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  size_t bytes = g_bytes.load(std::memory_order_relaxed);
  return base != 0 && a + len > base && a < base + bytes;
}

void setChained(const struct sigaction* act) {
  g_chainedSeq.fetch_add(1, std::memory_order_acq_rel);
  std::memcpy(&g_chained, act, sizeof *act);
  g_chainedSeq.fetch_add(1, std::memory_order_release);
}

void getChained(struct sigaction* out) { readChained(out); }

}  // namespace mesh::barrier
