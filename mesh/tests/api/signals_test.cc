// SIGSEGV as the application sees it once meshing has begun (docs/host-contract.md, section 4
// "Signals"): every observable behaviour must be glibc's whatever the program does with signals,
// while writes into objects being meshed keep working. Each test runs in a child (it changes
// process-wide signal state) after one mesh, so that libmesh's write-barrier handler is in
// place. Built against glibc the same tests check that they describe glibc's behaviour (the
// meshing parts then have nothing to mesh).
#include <gtest/gtest.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "api_test_util.h"

// sigblock, siggetmask, sighold, sigrelse, sigset and sigignore are deprecated, yet programs use
// them and they must work.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// Exported by glibc, declared by its headers only for old X/Open levels.
extern "C" sighandler_t bsd_signal(int sig, sighandler_t handler);

namespace mesh_api_test {
namespace {

constexpr int kChildMs = 60000;

void Say(const char* text) {
  ssize_t ignored = write(1, text, strlen(text));
  (void)ignored;
}

// One mesh, so that the write barrier's handler is installed (nothing under glibc).
bool MeshOnce() {
  if (!HaveLibmesh()) return true;
  Fragmented f(50000, 11);
  return Mesh()->compact() > 0;
}

// Meshes a fragmented heap in a loop while a thread (first running `setup`) writes into every
// object: its writes fault on the spans being meshed and must just wait.
struct WritesDuringMeshing {
  size_t meshes = 0;
  bool intact = false;
  bool ok() const { return intact && (meshes > 0 || !HaveLibmesh()); }
};
WritesDuringMeshing MeshWhileWriting(const std::function<void()>& setup) {
  Fragmented f(100000, 12);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    setup();
    while (!stop.load(std::memory_order_relaxed)) {
      for (auto* p : f.live) p[kObj - 1] = p[0];
    }
  });
  WritesDuringMeshing r;
  for (int i = 0; i < 8 && HaveLibmesh(); ++i) {
    r.meshes += Mesh()->compact();
    for (int k = 0; k < 2000; ++k) free(malloc(kObj));
  }
  stop = true;
  writer.join();
  r.intact = f.intact();
  return r;
}

// A read-only page of our own, outside the heap: writing to it is a real fault.
struct ReadOnlyPage {
  char* p = static_cast<char*>(mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ~ReadOnlyPage() { munmap(p, 4096); }
  void Fault() const { *static_cast<volatile char*>(OpaquePtr(p)) = 1; }
  void Open() const { mprotect(p, 4096, PROT_READ | PROT_WRITE); }
  void Close() const { mprotect(p, 4096, PROT_READ); }
};
ReadOnlyPage* g_page;   // the page the handlers below open
ReadOnlyPage* g_page2;  // a second one, for faults inside a handler

volatile sig_atomic_t g_calls = 0;
volatile sig_atomic_t g_armed = 0;
sigjmp_buf g_jump;

// Counts, then jumps back when a test expects the fault; any other call (a fault of the write
// barrier that reached the application) fails the child with 3.
void ArmedHandler(int) {
  g_calls = g_calls + 1;
  if (g_armed) siglongjmp(g_jump, 1);
  Say("the application's handler got a fault it did not cause\n");
  _exit(3);
}

// Makes the faulting page writable and returns, so the write succeeds.
void OpeningHandler(int) {
  g_calls = g_calls + 1;
  g_page->Open();
}

// sigaction(SIGSEGV) with an empty mask.
void SetSegvHandler(void (*handler)(int), int flags) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
}

bool SegvHandlerIs(sighandler_t h) {
  struct sigaction cur;
  memset(&cur, 0, sizeof cur);
  sigaction(SIGSEGV, nullptr, &cur);
  return cur.sa_handler == h;
}

bool SegvInMask() {
  sigset_t cur;
  sigemptyset(&cur);
  pthread_sigmask(SIG_BLOCK, nullptr, &cur);
  return sigismember(&cur, SIGSEGV) == 1;
}

// --- SA_ONSTACK ------------------------------------------------------------------------------

constexpr size_t kAltStack = 64 * 1024;
char* g_altStack;
volatile int g_never = -1;

void OnOverflow(int) {
  char local;
  bool onAlt = &local >= g_altStack && &local < g_altStack + kAltStack;
  Say(onAlt ? "handler on the alternate stack\n" : "handler elsewhere\n");
  _exit(onAlt ? 42 : 43);
}

__attribute__((noinline)) int Recurse(int n) {
  volatile char pad[1024];
  pad[0] = static_cast<char>(n);
  if (n == g_never) return 0;
  int r = Recurse(n + 1);
  asm volatile("" : : "r"(pad) : "memory");  // keeps every frame alive: no loop, no tail call
  return r + pad[0];
}

// In a thread with a small stack and an alternate signal stack, a handler installed with `flags`
// and a recursion that overflows the stack.
int OverflowWithAltStack(int flags) {
  if (!MeshOnce()) return 90;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t t;
  auto body = [](void* f) -> void* {
    g_altStack = static_cast<char*>(mmap(nullptr, kAltStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    stack_t ss{};
    ss.ss_sp = g_altStack;
    ss.ss_size = kAltStack;
    if (sigaltstack(&ss, nullptr) != 0) _exit(91);
    SetSegvHandler(OnOverflow, static_cast<int>(reinterpret_cast<intptr_t>(f)));
    Recurse(0);
    return nullptr;
  };
  if (pthread_create(&t, &attr, body, reinterpret_cast<void*>(intptr_t{flags})) != 0) return 92;
  pthread_join(t, nullptr);
  return 0;
}

// The case of CPython's faulthandler, Rust and Go: the handler must run, on the alternate stack.
TEST(Signals, S1_OnstackHandlerRunsOnTheAlternateStackWhenTheStackOverflows) {
  ChildResult r = RunInChild([] { return OverflowWithAltStack(SA_ONSTACK); }, kChildMs);
  EXPECT_TRUE(r.Exited(42)) << r.Describe();
}

// Without SA_ONSTACK the kernel cannot deliver the signal on the overflowed stack: the process
// dies of it (so libmesh must not run the application's handler on the alternate stack).
TEST(Signals, S1_HandlerWithoutOnstackCannotRunOnAnOverflowedStack) {
  ChildResult r = RunInChild([] { return OverflowWithAltStack(0); }, kChildMs);
  EXPECT_TRUE(r.Signaled(SIGSEGV)) << r.Describe();
}

TEST(Signals, S1_HandlerWithoutOnstackRunsOnTheThreadStack) {
  ChildResult r = RunInChild(
      [] {
        CHILD_CHECK(MeshOnce(), 90);
        static char alt[kAltStack];
        g_altStack = alt;
        stack_t ss{};
        ss.ss_sp = alt;
        ss.ss_size = sizeof alt;
        CHILD_CHECK(sigaltstack(&ss, nullptr) == 0, 91);
        SetSegvHandler(OnOverflow, 0);  // exits 42 on the alternate stack, 43 elsewhere
        ReadOnlyPage page;
        page.Fault();
        return 1;
      },
      kChildMs);
  EXPECT_TRUE(r.Exited(43)) << r.Describe();
}

// --- SA_RESETHAND, SA_NODEFER, sa_mask --------------------------------------------------------

TEST(Signals, S2_ResethandHandlerRunsOnceAndTheNextFaultKills) {
  ChildResult r = RunInChild(
      [] {
        CHILD_CHECK(MeshOnce(), 90);
        ReadOnlyPage page;
        g_page = &page;
        SetSegvHandler(OpeningHandler, SA_RESETHAND);
        page.Fault();
        CHILD_CHECK(g_calls == 1, 10);
        // Only the handler is reset; the flags stay as they were.
        struct sigaction cur;
        sigaction(SIGSEGV, nullptr, &cur);
        CHILD_CHECK(cur.sa_handler == SIG_DFL, 11);
        CHILD_CHECK((cur.sa_flags & SA_RESETHAND) != 0, 12);
        Say("first fault handled\n");
        page.Close();
        page.Fault();  // SIG_DFL now: the process dies of it
        Say("the handler ran again\n");
        return 13;
      },
      kChildMs);
  EXPECT_TRUE(r.Signaled(SIGSEGV)) << r.Describe();
  EXPECT_NE(r.output.find("first fault handled"), std::string::npos) << r.Describe();
}

volatile sig_atomic_t g_segvBlockedInHandler = -1, g_usr2BlockedInHandler = -1;

void MaskProbeHandler(int) {
  sigset_t cur;
  sigemptyset(&cur);
  pthread_sigmask(SIG_BLOCK, nullptr, &cur);
  g_segvBlockedInHandler = sigismember(&cur, SIGSEGV);
  g_usr2BlockedInHandler = sigismember(&cur, SIGUSR2);
  g_page->Open();
}

// While a handler runs, its sa_mask and (unless SA_NODEFER) SIGSEGV are blocked, as the thread
// sees it; afterwards the mask is what it was.
TEST(Signals, S2_HandlerRunsWithItsMaskAndSigsegvBlockedUnlessNodefer) {
  ChildResult r = RunInChild(
      [] {
        CHILD_CHECK(MeshOnce(), 90);
        for (int nodefer = 0; nodefer < 2; ++nodefer) {
          ReadOnlyPage page;
          g_page = &page;
          struct sigaction sa {};
          sa.sa_handler = MaskProbeHandler;
          sa.sa_flags = nodefer ? SA_NODEFER : 0;
          sigemptyset(&sa.sa_mask);
          sigaddset(&sa.sa_mask, SIGUSR2);
          sigaction(SIGSEGV, &sa, nullptr);
          page.Fault();
          CHILD_CHECK(g_usr2BlockedInHandler == 1, 10 + nodefer);
          CHILD_CHECK(g_segvBlockedInHandler == (nodefer ? 0 : 1), 20 + nodefer);
          CHILD_CHECK(!SegvInMask(), 30 + nodefer);
          sigset_t cur;
          pthread_sigmask(SIG_BLOCK, nullptr, &cur);
          CHILD_CHECK(sigismember(&cur, SIGUSR2) == 0, 40 + nodefer);
        }
        return 0;
      },
      kChildMs);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

volatile sig_atomic_t g_depth = 0;

// The first call faults again on a second page; a nested call opens it.
void NestingHandler(int) {
  g_depth = g_depth + 1;
  if (g_depth == 1) {
    Say("first call\n");
    g_page2->Fault();
    g_page->Open();
  } else {
    Say("nested call\n");
    g_page2->Open();
  }
  g_depth = g_depth - 1;
}

int FaultInsideHandler(int flags) {
  if (!MeshOnce()) return 90;
  ReadOnlyPage page, page2;
  g_page = &page;
  g_page2 = &page2;
  SetSegvHandler(NestingHandler, flags);
  page.Fault();
  Say("survived\n");
  return 0;
}

// Without SA_NODEFER, SIGSEGV is blocked in the handler: a fault there kills the process.
TEST(Signals, S2_FaultInsideAHandlerWithoutNodeferKills) {
  ChildResult r = RunInChild([] { return FaultInsideHandler(0); }, kChildMs);
  EXPECT_TRUE(r.Signaled(SIGSEGV)) << r.Describe();
  EXPECT_EQ(r.output.find("nested call"), std::string::npos) << r.Describe();
}

TEST(Signals, S2_FaultInsideANodeferHandlerCallsItAgain) {
  ChildResult r = RunInChild([] { return FaultInsideHandler(SA_NODEFER); }, kChildMs);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
  EXPECT_NE(r.output.find("nested call"), std::string::npos) << r.Describe();
}

// --- SIG_IGN ---------------------------------------------------------------------------------

// A sent SIGSEGV that is ignored does nothing; a fault cannot be ignored and kills.
int IgnoredThenFault(const std::function<void()>& ignore) {
  if (!MeshOnce()) return 90;
  ignore();
  if (!SegvHandlerIs(SIG_IGN)) return 10;
  raise(SIGSEGV);
  kill(getpid(), SIGSEGV);
  union sigval v {};
  sigqueue(getpid(), SIGSEGV, v);
  Say("sent SIGSEGVs ignored\n");
  ReadOnlyPage page;
  page.Fault();
  Say("fault ignored\n");
  return 11;
}

TEST(Signals, S3_IgnoredSigsegvIsIgnoredWhenSentAndKillsOnAFault) {
  ChildResult r = RunInChild([] { return IgnoredThenFault([] { signal(SIGSEGV, SIG_IGN); }); }, kChildMs);
  EXPECT_TRUE(r.Signaled(SIGSEGV)) << r.Describe();
  EXPECT_NE(r.output.find("sent SIGSEGVs ignored"), std::string::npos) << r.Describe();
  ChildResult r2 = RunInChild([] { return IgnoredThenFault([] { sigignore(SIGSEGV); }); }, kChildMs);
  EXPECT_TRUE(r2.Signaled(SIGSEGV)) << r2.Describe();
  EXPECT_NE(r2.output.find("sent SIGSEGVs ignored"), std::string::npos) << r2.Describe();
}

// --- the other functions that set a disposition -----------------------------------------------

// A handler installed with `install` gets real faults and only those, while writes during
// meshing keep working. A one-shot handler (sysv_signal) is reset by its first call.
int InstalledWith(sighandler_t (*install)(int, sighandler_t), bool oneShot) {
  if (!MeshOnce()) return 90;
  if (install(SIGSEGV, ArmedHandler) == SIG_ERR) return 10;
  WritesDuringMeshing w = MeshWhileWriting([] {});
  if (!w.ok()) return 11;
  if (g_calls != 0) return 12;
  ReadOnlyPage page;
  g_armed = 1;
  if (sigsetjmp(g_jump, 1) == 0) page.Fault();
  if (g_calls != 1) return 13;
  if (SegvInMask()) return 14;  // the jump restored the mask
  if (oneShot) {
    if (!SegvHandlerIs(SIG_DFL)) return 15;
    Say("one-shot handler reset\n");
  }
  if (sigsetjmp(g_jump, 1) == 0) page.Fault();
  return g_calls == 2 ? 0 : 16;
}

TEST(Signals, S4_SysvSignalHandlerGetsOneRealFaultWhileMeshingWorks) {
  ChildResult r = RunInChild([] { return InstalledWith(sysv_signal, true); }, kChildMs);
  EXPECT_TRUE(r.Signaled(SIGSEGV)) << r.Describe();
  EXPECT_NE(r.output.find("one-shot handler reset"), std::string::npos) << r.Describe();
}

TEST(Signals, S4_SigsetHandlerGetsRealFaultsWhileMeshingWorks) {
  ChildResult r = RunInChild([] { return InstalledWith(sigset, false); }, kChildMs);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

TEST(Signals, S4_BsdSignalHandlerGetsRealFaultsWhileMeshingWorks) {
  ChildResult r = RunInChild([] { return InstalledWith(bsd_signal, false); }, kChildMs);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

// What sigaction() reads back for SIGSEGV is what it reads back for any other signal given the
// same disposition (flags the C library adds, what the kernel drops), whether sigaction or
// another function set it, before and after a mesh, and after a one-shot handler fired.
TEST(Signals, S5_SigsegvDispositionReadsBackAsAnyOtherSignals) {
  ChildResult r = RunInChild(
      [] {
        constexpr int kOther = SIGPWR;  // one libmesh never touches
        auto same = [](const struct sigaction& act, int code) {
          struct sigaction a, b;
          memset(&a, 0x5a, sizeof a);
          memset(&b, 0x5a, sizeof b);
          if (sigaction(SIGSEGV, &act, nullptr) != 0 || sigaction(kOther, &act, nullptr) != 0) return code;
          sigaction(SIGSEGV, nullptr, &a);
          sigaction(kOther, nullptr, &b);
          if (a.sa_handler != b.sa_handler) return code + 1;
          if (a.sa_flags != b.sa_flags) {
            std::fprintf(stderr, "flags %#x, other signal %#x\n", a.sa_flags, b.sa_flags);
            return code + 2;
          }
          if (a.sa_restorer != b.sa_restorer) return code + 3;
          for (int s = 1; s <= 64; ++s) {
            if (sigismember(&a.sa_mask, s) != sigismember(&b.sa_mask, s)) return code + 4;
          }
          return 0;
        };
        auto all = [&](int base) {
          struct sigaction act {};
          act.sa_handler = OpeningHandler;
          act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
          if (int rc = same(act, base)) return rc;
          act.sa_flags = 0x400 | SA_NODEFER;  // SA_UNSUPPORTED: Linux 5.11 and later drop it
          sigaddset(&act.sa_mask, SIGUSR2);
          sigaddset(&act.sa_mask, SIGKILL);
          sigaddset(&act.sa_mask, SIGSEGV);
          if (int rc = same(act, base + 5)) return rc;
          act.sa_handler = SIG_IGN;
          if (int rc = same(act, base + 10)) return rc;
          act.sa_handler = SIG_DFL;
          act.sa_flags = SA_SIGINFO;
          return same(act, base + 15);
        };
        // The other functions that set a disposition; their masks hold the signal itself.
        auto sameAfter = [](const std::function<void(int)>& set, int code) {
          set(SIGSEGV);
          set(kOther);
          struct sigaction a, b;
          memset(&a, 0, sizeof a);
          memset(&b, 0, sizeof b);
          sigaction(SIGSEGV, nullptr, &a);
          sigaction(kOther, nullptr, &b);
          if (a.sa_handler != b.sa_handler || a.sa_flags != b.sa_flags || a.sa_restorer != b.sa_restorer) {
            std::fprintf(stderr, "flags %#x, other signal %#x\n", a.sa_flags, b.sa_flags);
            return code;
          }
          for (int s = 1; s <= 64; ++s) {
            int in = s == SIGSEGV ? kOther : s == kOther ? SIGSEGV : s;
            if (sigismember(&a.sa_mask, in) != sigismember(&b.sa_mask, s)) return code + 1;
          }
          return 0;
        };
        auto installers = [&](int base) {
          if (int rc = sameAfter([](int s) { signal(s, OpeningHandler); }, base)) return rc;
          if (int rc = sameAfter([](int s) { sysv_signal(s, OpeningHandler); }, base + 2)) return rc;
          if (int rc = sameAfter([](int s) { sigset(s, OpeningHandler); }, base + 4)) return rc;
          if (int rc = sameAfter([](int s) { siginterrupt(s, 1); }, base + 6)) return rc;
          if (int rc = sameAfter([](int s) { bsd_signal(s, OpeningHandler); }, base + 8)) return rc;
          if (int rc = sameAfter([](int s) { siginterrupt(s, 0); }, base + 10)) return rc;
          return sameAfter([](int s) { sigignore(s); }, base + 12);
        };
        CHILD_CHECK(all(10) == 0, 10);
        CHILD_CHECK(installers(60) == 0, 60);
        CHILD_CHECK(MeshOnce(), 90);
        CHILD_CHECK(all(30) == 0, 30);
        CHILD_CHECK(installers(80) == 0, 80);
        // A one-shot handler after it ran.
        struct sigaction act {};
        act.sa_handler = [](int) { g_calls = g_calls + 1; };
        act.sa_flags = SA_RESETHAND | SA_RESTART;
        sigaction(SIGSEGV, &act, nullptr);
        sigaction(kOther, &act, nullptr);
        raise(SIGSEGV);
        raise(kOther);
        CHILD_CHECK(g_calls == 2, 50);
        struct sigaction a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        sigaction(SIGSEGV, nullptr, &a);
        sigaction(kOther, nullptr, &b);
        CHILD_CHECK(a.sa_handler == SIG_DFL && b.sa_handler == SIG_DFL, 51);
        CHILD_CHECK(a.sa_flags == b.sa_flags, 52);
        return 0;
      },
      kChildMs);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

// --- blocking SIGSEGV --------------------------------------------------------------------------

void NeverHandler(int) {
  Say("handler ran for a fault on a blocked SIGSEGV\n");
  _exit(5);
}

// A thread that blocks SIGSEGV sees it blocked (also in a thread it creates), its writes during
// meshing still work, and a real fault kills the process even with a handler installed.
TEST(Signals, S6_BlockedSigsegvIsReportedInheritedAndAFaultKills) {
  ChildResult r = RunInChild(
      [] {
        CHILD_CHECK(MeshOnce(), 90);
        signal(SIGSEGV, NeverHandler);
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGSEGV);
        CHILD_CHECK(pthread_sigmask(SIG_BLOCK, &set, nullptr) == 0, 10);
        CHILD_CHECK(SegvInMask(), 11);
        sigemptyset(&old);
        CHILD_CHECK(sigprocmask(SIG_BLOCK, nullptr, &old) == 0 && sigismember(&old, SIGSEGV) == 1, 12);
        CHILD_CHECK((siggetmask() & (1 << (SIGSEGV - 1))) != 0, 13);
        bool childSees = false;
        std::thread([&] { childSees = SegvInMask(); }).join();
        CHILD_CHECK(childSees, 14);
        WritesDuringMeshing w = MeshWhileWriting([] {
          sigset_t s;
          sigemptyset(&s);
          sigaddset(&s, SIGSEGV);
          pthread_sigmask(SIG_BLOCK, &s, nullptr);
        });
        CHILD_CHECK(w.ok(), 15);
        CHILD_CHECK(SegvInMask(), 16);
        Say("blocked\n");
        ReadOnlyPage page;
        page.Fault();
        return 17;
      },
      kChildMs);
  EXPECT_TRUE(r.Signaled(SIGSEGV)) << r.Describe();
  EXPECT_NE(r.output.find("blocked"), std::string::npos) << r.Describe();
}

volatile sig_atomic_t g_infoCode = 0, g_infoValue = 0;

void InfoHandler(int, siginfo_t* info, void*) {
  g_calls = g_calls + 1;
  g_infoCode = info->si_code;
  g_infoValue = info->si_value.sival_int;
}

// sigset(SIG_HOLD)/sighold hold SIGSEGV back as the kernel would (a sent one waits, with its
// siginfo, and sigwaitinfo can take it), without stopping writes during meshing.
TEST(Signals, S6_HeldSigsegvWaitsForTheReleaseWhileMeshingWorks) {
  ChildResult r = RunInChild(
      [] {
        CHILD_CHECK(MeshOnce(), 90);
        struct sigaction sa {};
        sa.sa_sigaction = InfoHandler;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, nullptr);
        CHILD_CHECK(reinterpret_cast<void*>(sigset(SIGSEGV, SIG_HOLD)) == reinterpret_cast<void*>(InfoHandler), 10);
        CHILD_CHECK(SegvInMask(), 11);
        WritesDuringMeshing w = MeshWhileWriting([] { sighold(SIGSEGV); });
        CHILD_CHECK(w.ok(), 12);
        union sigval v {};
        v.sival_int = 77;
        sigqueue(getpid(), SIGSEGV, v);
        CHILD_CHECK(g_calls == 0, 13);
        sigset_t pending;
        sigemptyset(&pending);
        CHILD_CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGSEGV) == 1, 14);
        CHILD_CHECK(sigrelse(SIGSEGV) == 0, 15);
        CHILD_CHECK(g_calls == 1 && g_infoCode == SI_QUEUE && g_infoValue == 77, 16);
        CHILD_CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGSEGV) == 0, 17);
        // sigwaitinfo takes a held one (glibc reports raise()'s tkill as SI_USER).
        sighold(SIGSEGV);
        raise(SIGSEGV);
        sigset_t wanted;
        sigemptyset(&wanted);
        sigaddset(&wanted, SIGSEGV);
        siginfo_t info{};
        CHILD_CHECK(sigwaitinfo(&wanted, &info) == SIGSEGV && info.si_code == SI_USER, 18);
        CHILD_CHECK(g_calls == 1, 19);
        // sigset() with a handler releases it, and says it was held.
        CHILD_CHECK(sigset(SIGSEGV, SIG_DFL) == SIG_HOLD, 20);
        CHILD_CHECK(!SegvInMask(), 21);
        return 0;
      },
      kChildMs);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

// --- SIGSEGV in the sa_mask of other signals ----------------------------------------------------

Fragmented* g_heap;
std::atomic<long> g_alarms{0};

void WriteEverything(int) {
  for (auto* p : g_heap->live) p[kObj - 1] = p[0];
  g_alarms.fetch_add(1, std::memory_order_relaxed);
}

// A handler installed with every signal in its mask (a common idiom) may write into objects
// that are being meshed; its mask still reads back with SIGSEGV in it.
TEST(Signals, S7_HandlerWithAFullMaskCanWriteDuringMeshing) {
  ChildResult r = RunInChild(
      [] {
        CHILD_CHECK(MeshOnce(), 90);
        Fragmented heap(100000, 13);
        g_heap = &heap;
        struct sigaction sa {}, back {};
        sa.sa_handler = WriteEverything;
        sigfillset(&sa.sa_mask);
        CHILD_CHECK(sigaction(SIGALRM, &sa, nullptr) == 0, 10);
        CHILD_CHECK(sigaction(SIGALRM, nullptr, &back) == 0 && sigismember(&back.sa_mask, SIGSEGV) == 1, 11);
        std::atomic<bool> stop{false};
        pthread_t target = pthread_self();
        std::thread sender([&] {
          while (!stop.load()) {
            pthread_kill(target, SIGALRM);
            usleep(200);
          }
        });
        size_t meshes = 0;
        for (int i = 0; i < 10 && HaveLibmesh(); ++i) {
          std::thread mesher([&] { meshes += Mesh()->compact(); });
          mesher.join();
          for (int k = 0; k < 2000; ++k) free(malloc(kObj));
        }
        for (int waited = 0; g_alarms.load() == 0 && waited < 2000; ++waited) usleep(1000);
        stop = true;
        sender.join();
        CHILD_CHECK(meshes > 0 || !HaveLibmesh(), 12);
        CHILD_CHECK(g_alarms.load() > 0, 13);
        CHILD_CHECK(heap.intact(), 14);
        return 0;
      },
      kChildMs);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

}  // namespace
}  // namespace mesh_api_test
