// hostile-host: a program that treats its descriptors and limits the way daemons do, and checks
// that the allocator under it never notices (docs/host-contract.md).
//
//   hostile-host [ROUNDS] [--objects N] [--strict-overcommit] ...
//
// Every round keeps a fragmented heap of stamped objects (compacted: mesh_compact() under
// libmesh, malloc_trim elsewhere) and then:
//   descriptors  closes every descriptor above 2 (close_range), opens its own data file, which
//                takes the lowest number, churns, compacts and forks; the file must hold exactly
//                what was written to it;
//   fd limit     lowers RLIMIT_NOFILE and opens /dev/null until none is left, then forks: the
//                child checks every object and overwrites them all, the parent checks that none
//                of its objects changed;
//   signals      with meshing going on (a compacting thread and a writer), installs SIGSEGV
//                handlers through sysv_signal, sigset and bsd_signal and requires each to get a
//                real fault; an SA_ONSTACK handler must run on the alternate stack on a stack
//                overflow; an SA_RESETHAND handler must run once and the next fault kill; with
//                SIG_IGN a raised SIGSEGV must be ignored (each case in a child process);
//   syscalls     with meshing going on (a thread fragments and compacts), two threads make raw
//                system calls (fstat, getrandom, epoll_wait, clock_gettime: no C library
//                wrapper, so nothing libmesh interposes) that write into live objects of the
//                heap being compacted, and count the calls that fail with EFAULT. The counts are
//                printed; any EFAULT fails the round where libmesh reports that kernel writes
//                wait (kernel_writes_wait, the userfaultfd write protection) or under --no-efault;
//   strict       (--strict-overcommit, as root) sets vm.overcommit_memory=2 for the round and
//                restores it afterwards: a child process allocates, frees, forks and checks its
//                objects there; the parent restores the setting whatever the child did.
// Exit status 0 when every check passed; 1 with a FAIL line naming the first check that did not.
#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "workload.h"

namespace {

struct Options {
  uint64_t rounds = 4;
  uint64_t objects = 60000;
  uint64_t seed = stress::default_seed();
  uint64_t timeout = 300;
  bool strict = false;
  bool noEfault = false;
  bool quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("hostile-host",
                  "Closes and reuses descriptors, forks at the descriptor limit, installs SIGSEGV "
                  "handlers every way the C library allows while the heap meshes, and (optionally) "
                  "runs under strict overcommit, checking every object and file it owns.");
  cli.positional("ROUNDS", "number of rounds", o.rounds, 1, 1u << 20, false);
  cli.number("objects", "objects allocated per round (about 1 in 4 kept)", o.objects, 100, 1u << 24);
  cli.number("seed", "random seed", o.seed, 0, UINT64_MAX, "from the clock; printed");
  cli.number("timeout", "fail if the whole run takes longer than N seconds (0 = no limit)", o.timeout,
             0, 1u << 30);
  cli.flag("strict-overcommit",
           "also run each round under vm.overcommit_memory=2 (root only; restored afterwards)", o.strict);
  cli.flag("no-efault",
           "fail on any EFAULT in the syscalls round even where libmesh does not report that "
           "kernel writes wait", o.noEfault);
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.parse(argc, argv);
  return o;
}

// A fragmented heap: `count` objects of 16-512 B, three in four freed at random, the rest
// stamped with the round's seed.
class Heap {
 public:
  Heap(uint64_t count, uint64_t seed) : seed_(seed) {
    stress::Rng rng(seed);
    std::vector<stress::Block> all(count);
    for (auto& b : all) {
      b.n = rng.between(16, 512);
      b.p = stress::xmalloc(b.n, "heap");
    }
    for (auto& b : all) {
      if (rng.one_in(4)) {
        stress::stamp(b.p, b.n, seed_);
        kept_.push_back(b);
      } else {
        std::free(b.p);
      }
    }
  }
  ~Heap() {
    for (auto& b : kept_) stress::release_block(b, seed_, "final free");
  }
  void verify(const char* ctx) const {
    for (const auto& b : kept_) stress::verify(b.p, b.n, seed_, ctx);
  }
  void overwrite() {
    for (auto& b : kept_) std::memset(b.p, 0xee, b.n);
  }

 private:
  uint64_t seed_;
  std::vector<stress::Block> kept_;
};

// Forks; the child runs body (exit status 0 = fine) and the parent requires status 0.
template <typename Body>
void in_child(const char* what, Body body) {
  pid_t pid = fork();
  if (pid < 0) stress::fail("%s: fork failed: %s", what, std::strerror(errno));
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) stress::fail("%s: waitpid failed", what);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    stress::fail("%s: child ended with status 0x%x", what, status);
}

std::string numbered_lines(int count) {
  std::string s;
  char line[32];
  for (int i = 0; i < count; ++i) {
    std::snprintf(line, sizeof line, "record %09d\n", i);
    s += line;
  }
  return s;
}

void descriptors_round(const Options& o, uint64_t seed, stress::CompactFn compact) {
  if (syscall(SYS_close_range, 3u, ~0u, 0) != 0) stress::fail("close_range: %s", std::strerror(errno));
  char path[] = "/tmp/hostile-host-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) stress::fail("mkstemp: %s", std::strerror(errno));
  unlink(path);
  std::string want = numbered_lines(50000);
  if (write(fd, want.data(), want.size()) != static_cast<ssize_t>(want.size())) stress::fail("write");
  {
    Heap heap(o.objects, seed);
    stress::compact_now(compact);
    in_child("descriptors: fork after close_range", [&] { heap.verify("descriptors: child"); });
    Heap more(o.objects, seed + 1);
    stress::compact_now(compact);
    heap.verify("descriptors: parent");
  }
  stress::compact_now(compact);  // the meshed spans freed above: their file pages released
  std::string got(want.size() + 1, '\0');
  ssize_t n = pread(fd, got.data(), got.size(), 0);
  if (n != static_cast<ssize_t>(want.size()) || got.compare(0, want.size(), want) != 0)
    stress::fail("descriptors: the program's own file changed (read %zd of %zu bytes)", n, want.size());
  close(fd);
}

void fd_limit_round(const Options& o, uint64_t seed, stress::CompactFn compact) {
  Heap heap(o.objects, seed);
  stress::compact_now(compact);
  rlimit old;
  if (getrlimit(RLIMIT_NOFILE, &old) != 0) stress::fail("getrlimit");
  rlimit low = old;
  low.rlim_cur = 64;
  if (setrlimit(RLIMIT_NOFILE, &low) != 0) stress::fail("setrlimit: %s", std::strerror(errno));
  std::vector<int> fillers;
  for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
  if (errno != EMFILE) stress::fail("fd limit: open failed with %s, not EMFILE", std::strerror(errno));
  in_child("fd limit: fork with no free descriptor", [&] {
    heap.verify("fd limit: child");
    heap.overwrite();
  });
  for (int fd : fillers) close(fd);
  setrlimit(RLIMIT_NOFILE, &old);
  heap.verify("fd limit: parent after the child overwrote its copy");
}

// --- signals ----------------------------------------------------------------------------------

sigjmp_buf g_jump;
volatile sig_atomic_t g_faults = 0;
char* g_altstack = nullptr;
constexpr size_t kAltStack = 1 << 16;

void jump_out(int) {
  g_faults = g_faults + 1;
  siglongjmp(g_jump, 1);
}

// A real fault outside the heap (the first page is never mapped); true when the handler ran.
bool fault_once() {
  if (sigsetjmp(g_jump, 1) == 0) {
    *static_cast<volatile int*>(nullptr) = 1;
    return false;
  }
  return true;
}

void on_altstack(int) {
  char here;
  bool on = &here >= g_altstack && &here < g_altstack + kAltStack;
  _exit(on ? 0 : 4);
}

// Recurses until the stack overflows (the depth test never stops it in practice).
__attribute__((noinline)) int recurse(int depth) {
  volatile char pad[512];
  pad[0] = static_cast<char>(depth);
  if (depth == -1) return 0;
  return recurse(depth + 1) + pad[0];
}

using Installer = sighandler_t (*)(int, sighandler_t);
extern "C" sighandler_t sysv_signal(int, sighandler_t);
extern "C" sighandler_t bsd_signal(int, sighandler_t);

void signals_round(const Options& o, uint64_t seed, stress::CompactFn compact) {
  // Meshing goes on meanwhile: a thread compacts while another writes into the kept objects.
  Heap heap(o.objects, seed);
  std::atomic<bool> stop{false};
  std::thread compactor([&] {
    while (!stop.load()) {
      Heap churn(o.objects / 4, seed + 7);
      stress::compact_now(compact);
    }
  });
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const Installer installers[] = {sysv_signal, sigset, bsd_signal};  // sigset: what programs do
#pragma GCC diagnostic pop
  const char* names[] = {"sysv_signal", "sigset", "bsd_signal"};
  for (int i = 0; i < 3; ++i) {
    in_child(names[i], [&] {
      installers[i](SIGSEGV, jump_out);
      for (int k = 0; k < 3; ++k) {
        heap.verify("signals: child");
        if (!fault_once()) _exit(2);
        installers[i](SIGSEGV, jump_out);  // sysv_signal resets to SIG_DFL after one delivery
      }
      _exit(g_faults == 3 ? 0 : 3);
    });
  }
  in_child("SA_ONSTACK handler on a stack overflow", [&] {
    g_altstack = static_cast<char*>(stress::xmalloc(kAltStack, "alternate stack"));
    stack_t ss{};
    ss.ss_sp = g_altstack;
    ss.ss_size = kAltStack;
    struct sigaction act {};
    act.sa_handler = on_altstack;
    act.sa_flags = SA_ONSTACK;
    if (sigaltstack(&ss, nullptr) != 0 || sigaction(SIGSEGV, &act, nullptr) != 0) _exit(5);
    _exit(recurse(0) == 0 ? 6 : 7);  // never returns: the overflow ends in the handler
  });
  pid_t pid = fork();
  if (pid == 0) {
    struct sigaction act {};
    act.sa_handler = jump_out;
    act.sa_flags = SA_RESETHAND;
    sigaction(SIGSEGV, &act, nullptr);
    if (!fault_once()) _exit(2);
    fault_once();  // SIG_DFL now: this fault kills
    _exit(3);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
    stress::fail("signals: SA_RESETHAND handler: the second fault did not kill (status 0x%x)", status);
  in_child("SIG_IGN and raise(SIGSEGV)", [&] {
    signal(SIGSEGV, SIG_IGN);
    raise(SIGSEGV);
    heap.verify("signals: after an ignored SIGSEGV");
  });
  stop = true;
  compactor.join();
  heap.verify("signals: parent");
}

// libmesh's kernel_writes_wait statistic (through mesh_stats_json, so that the program needs
// no libmesh header): 1 when kernel writes into a span being meshed wait, 0 otherwise or under
// another allocator.
bool kernel_writes_wait() {
  using JsonFn = size_t (*)(char*, size_t);
  auto json = reinterpret_cast<JsonFn>(dlsym(RTLD_DEFAULT, "mesh_stats_json"));
  char buf[4096];
  if (json == nullptr || json(buf, sizeof buf) >= sizeof buf) return false;
  const char* key = std::strstr(buf, "\"kernel_writes_wait\":");
  return key != nullptr && key[std::strlen("\"kernel_writes_wait\":")] == '1';
}

void syscalls_round(const Options& o, uint64_t seed, stress::CompactFn compact) {
  constexpr size_t kBuf = 256;  // room for struct stat (144 bytes) and the others
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int fds[2];
  if (ep < 0 || pipe2(fds, O_CLOEXEC) != 0 || write(fds[1], "x", 1) != 1) stress::fail("syscalls: set-up failed");
  epoll_event ev{};
  ev.events = EPOLLIN;
  epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
  std::atomic<bool> stop{false};
  std::atomic<std::vector<void*>*> targets{nullptr};
  std::atomic<long> calls{0}, efaults[4] = {};
  auto caller = [&](size_t i) {
    while (!stop.load(std::memory_order_relaxed)) {
      std::vector<void*>* t = targets.load(std::memory_order_acquire);
      if (t == nullptr || t->empty()) continue;
      void* b = (*t)[(i += 13) % t->size()];
      if (syscall(SYS_fstat, fds[0], b) < 0 && errno == EFAULT) efaults[0]++;
      if (syscall(SYS_getrandom, b, 16, 0) < 0 && errno == EFAULT) efaults[1]++;
      if (syscall(SYS_epoll_wait, ep, b, 1, 0) < 0 && errno == EFAULT) efaults[2]++;
      if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, b) < 0 && errno == EFAULT) efaults[3]++;
      calls += 4;
    }
  };
  std::thread a(caller, 0), b(caller, 5);
  std::vector<std::vector<void*>> rounds(20);  // freed only after the callers stopped
  stress::Rng rng(seed);
  size_t meshes = 0;
  for (auto& live : rounds) {
    std::vector<void*> all(o.objects / 2);
    for (auto& p : all) p = stress::xmalloc(kBuf, "syscalls: buffer");
    for (void* p : all) {
      if (rng.one_in(4)) {
        live.push_back(p);
      } else {
        std::free(p);
      }
    }
    targets.store(&live, std::memory_order_release);
    meshes += stress::compact_now(compact);
  }
  stop = true;
  a.join();
  b.join();
  for (auto& live : rounds) {
    for (void* p : live) std::free(p);
  }
  close(ep);
  close(fds[0]);
  close(fds[1]);
  long total = efaults[0] + efaults[1] + efaults[2] + efaults[3];
  bool waits = kernel_writes_wait();
  if (!o.quiet) {
    std::printf("syscalls: %zu meshes, %ld calls, EFAULT: fstat %ld getrandom %ld epoll_wait %ld clock_gettime %ld (kernel writes %s)\n",
                meshes, calls.load(), efaults[0].load(), efaults[1].load(), efaults[2].load(), efaults[3].load(),
                waits ? "wait" : "may fail");
  }
  if (total > 0 && (waits || o.noEfault))
    stress::fail("syscalls: %ld system calls failed with EFAULT while the heap was meshed", total);
}

const char* kOvercommit = "/proc/sys/vm/overcommit_memory";

long read_overcommit() {
  FILE* f = std::fopen(kOvercommit, "r");
  long v = -1;
  if (f != nullptr) {
    if (std::fscanf(f, "%ld", &v) != 1) v = -1;
    std::fclose(f);
  }
  return v;
}

bool write_overcommit(long v) {
  FILE* f = std::fopen(kOvercommit, "w");
  if (f == nullptr) return false;
  bool ok = std::fprintf(f, "%ld\n", v) > 0;
  return std::fclose(f) == 0 && ok;
}

void strict_round(const Options& o, uint64_t seed, stress::CompactFn compact) {
  long old = read_overcommit();
  if (old < 0 || !write_overcommit(2)) stress::fail("strict: cannot set %s (run as root)", kOvercommit);
  pid_t pid = fork();
  if (pid == 0) {
    Heap heap(o.objects, seed);
    stress::compact_now(compact);
    std::vector<void*> big;
    for (int i = 0; i < 16; ++i) big.push_back(stress::xmalloc(8u << 20, "strict: 8 MiB block"));
    for (void* p : big) std::free(p);
    in_child("strict: fork", [&] { heap.verify("strict: child"); });
    heap.verify("strict: parent");
    _exit(0);
  }
  int status = 0;
  bool waited = pid > 0 && waitpid(pid, &status, 0) == pid;
  if (!write_overcommit(old)) stress::fail("strict: could not restore %s to %ld", kOvercommit, old);
  if (!waited || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    stress::fail("strict: the round under vm.overcommit_memory=2 failed (status 0x%x)", status);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  if (o.timeout > 0) stress::arm_watchdog(static_cast<unsigned>(o.timeout), "hostile-host");
  stress::CompactFn compact = stress::find_mesh_compact();
  if (!o.quiet) std::printf("hostile-host: %" PRIu64 " rounds, seed %" PRIu64 "\n", o.rounds, o.seed);
  for (uint64_t r = 0; r < o.rounds; ++r) {
    uint64_t seed = o.seed + 101 * r;
    descriptors_round(o, seed, compact);
    fd_limit_round(o, seed + 2, compact);
    signals_round(o, seed + 4, compact);
    syscalls_round(o, seed + 5, compact);
    if (o.strict) strict_round(o, seed + 3, compact);
    if (!o.quiet) std::printf("round %" PRIu64 " ok\n", r + 1);
  }
  std::printf("hostile-host: ok\n");
  return 0;
}
