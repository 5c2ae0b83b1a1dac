// fork-stress: fork (and posix_spawn) while other threads allocate and free.
//
//   fork-stress [FORKS] [--threads N] ...
//
// Worker threads run the churn workload continuously. The main thread keeps a "registry" of heap
// objects with known contents; before each fork it replaces a quarter of them (fragmenting the
// heap), now and then compacts (mesh_compact, or malloc_trim elsewhere), and restamps them all
// for generation g. Then:
//   child:  allocates and frees, checks every registry object holds generation g, waits until the
//           parent has rewritten the registry as g+1 and checks it still sees g, then overwrites
//           and frees part of its copy and exits 0;
//   parent: rewrites the registry as g+1 right after the fork, waits for the child, requires exit
//           status 0, and checks the registry still holds g+1 (the child's writes stay private).
// A deadlock in either process trips an alarm() watchdog and becomes a failure.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <thread>

#include "workload.h"

extern char** environ;

namespace {

struct Options {
  uint64_t forks = 300;
  uint64_t threads = 2;
  uint64_t objects = 3000;
  uint64_t compact_every = 8;
  uint64_t spawn_every = 10;
  uint64_t seed = stress::default_seed();
  uint64_t timeout = 600;
  uint64_t child_timeout = 30;
  bool quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("fork-stress",
                  "Forks repeatedly while worker threads allocate; children must be able to "
                  "allocate and see exactly the parent's data as of the fork.");
  cli.positional("FORKS", "number of forks", o.forks, 1, 1u << 24, false);
  cli.number("threads", "worker threads allocating during the forks", o.threads, 0, 256);
  cli.number("objects", "objects in the registry checked by parent and child", o.objects, 1,
             1u << 22);
  cli.number("compact-every", "compact before every Nth fork (0 = never)", o.compact_every, 0,
             1u << 30);
  cli.number("spawn-every", "posix_spawn /bin/true after every Nth fork (0 = never)", o.spawn_every,
             0, 1u << 30);
  cli.number("seed", "random seed", o.seed, 0, UINT64_MAX, "from the clock; printed");
  cli.number("timeout", "fail if the whole run takes longer than N seconds (0 = no limit)",
             o.timeout, 0, 1u << 30);
  cli.number("child-timeout", "fail if a child takes longer than N seconds", o.child_timeout, 1,
             1u << 30);
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.parse(argc, argv);
  return o;
}

// Stamp seed of the registry for a generation (parent generations and the child's own writes).
uint64_t generation_seed(uint64_t base, uint64_t generation) {
  return base ^ stress::mix64(generation + 1);
}

// Heap objects with contents known to both sides of a fork.
class Registry {
 public:
  Registry(uint64_t count, uint64_t seed) : rng_(seed), objects_(count) {
    for (stress::Block& b : objects_) b = allocate();
  }

  // Replaces about a quarter of the objects by new ones (the stamps are rewritten afterwards;
  // every object was verified at the end of the previous round, so no check before the free).
  void churn() {
    for (stress::Block& b : objects_) {
      if (!rng_.one_in(4)) continue;
      std::free(b.p);
      b = allocate();
    }
  }

  void stamp_all(uint64_t seed) {
    for (stress::Block& b : objects_) stress::stamp(b.p, b.n, seed);
  }

  void verify_all(uint64_t seed, const char* ctx) const {
    for (const stress::Block& b : objects_) stress::verify(b.p, b.n, seed, ctx);
  }

  // True if the first object carries the stamp of `seed` (used to name a leaked write).
  bool first_has_stamp(uint64_t seed) const {
    uint64_t head;
    std::memcpy(&head, objects_[0].p, 8);
    return head == stress::stamp_tag(objects_[0].p, objects_[0].n, seed);
  }

  // Checks and frees every object (at the end, in the parent).
  void release_all(uint64_t seed) {
    for (stress::Block& b : objects_) stress::release_block(b, seed, "parent: final free");
  }

  // Frees every other object after checking it (used in the child only).
  void free_half(uint64_t seed) {
    for (size_t i = 0; i < objects_.size(); i += 2) {
      stress::verify(objects_[i].p, objects_[i].n, seed, "child: free of an inherited object");
      std::free(objects_[i].p);
      objects_[i] = stress::Block{};
    }
  }

 private:
  stress::Block allocate() {
    size_t n = rng_.one_in(50) ? rng_.between(513, 16384) : rng_.between(16, 512);
    return stress::Block{stress::xmalloc(n, "registry"), n, stress::AllocKind::kMalloc};
  }

  stress::Rng rng_;
  std::vector<stress::Block> objects_;
};

// Watchdog hook: SIGKILLs the children of the main thread, so that a child stuck inside fork()
// (where its own alarm is not armed yet) does not outlive the failed run. Reads
// /proc/self/task/<pid>/children with open/read only.
void kill_children() {
  // "/proc/self/task/<pid>/children", formatted by hand (snprintf is not async-signal-safe).
  char digits[24];
  int len = 0;
  for (long v = getpid(); v > 0 && len < 23; v /= 10)
    digits[len++] = static_cast<char>('0' + v % 10);
  char path[64] = "/proc/self/task/";
  size_t at = std::strlen(path);
  while (len > 0) path[at++] = digits[--len];
  std::memcpy(path + at, "/children", sizeof "/children");
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  long pid = 0;
  for (char* c = buf; *c != '\0'; ++c) {
    if (*c >= '0' && *c <= '9') {
      pid = pid * 10 + (*c - '0');
    } else if (pid > 0) {
      kill(static_cast<pid_t>(pid), SIGKILL);
      pid = 0;
    }
  }
  if (pid > 0) kill(static_cast<pid_t>(pid), SIGKILL);
}

// Allocation activity in a child: a few hundred objects through malloc and new.
void child_allocate(uint64_t seed) {
  stress::Rng rng(seed);
  std::vector<stress::Block> blocks;
  blocks.reserve(300);
  for (int i = 0; i < 300; ++i)
    blocks.push_back(stress::make_block(rng, stress::random_size(rng), seed));
  for (stress::Block& b : blocks) stress::release_block(b, seed, "child: free of its own object");
}

// The child's side of one fork; never returns.
[[noreturn]] void run_child(Registry& registry, uint64_t gen_seed, uint64_t next_seed, int ready_fd,
                            const Options& o) {
  stress::g_watchdog_hook = nullptr;
  stress::arm_watchdog(static_cast<unsigned>(o.child_timeout),
                       "child did not finish in time (deadlock after fork?)");
  child_allocate(gen_seed ^ 0xc41d);
  registry.verify_all(gen_seed, "child: inherited registry object");

  char byte;
  if (::read(ready_fd, &byte, 1) != 1) stress::fail("child: lost the pipe from the parent");
  if (registry.first_has_stamp(next_seed))
    stress::fail("child sees the parent's write made after the fork (registry object 0)");
  registry.verify_all(gen_seed, "child: registry object after the parent's rewrite");

  uint64_t own_seed = gen_seed ^ 0xc41dc41d;
  registry.stamp_all(own_seed);
  registry.free_half(own_seed);
  child_allocate(own_seed);
  _exit(0);
}

void check_child_status(pid_t pid, int status, uint64_t fork_no) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  if (WIFSIGNALED(status))
    stress::fail("child %d (fork #%" PRIu64 ") killed by signal %d (%s)", pid, fork_no,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
  stress::fail("child %d (fork #%" PRIu64 ") exited with status %d (its message is above)", pid,
               fork_no, WEXITSTATUS(status));
}

// One fork round for generation seed `gen_seed`; the parent moves the registry to `next_seed`.
void fork_once(Registry& registry, uint64_t gen_seed, uint64_t next_seed, uint64_t fork_no,
               const Options& o) {
  int ready[2];
  if (pipe(ready) != 0) stress::fail("pipe: %s", strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) stress::fail("fork #%" PRIu64 ": %s", fork_no, strerror(errno));
  if (pid == 0) {
    ::close(ready[1]);
    run_child(registry, gen_seed, next_seed, ready[0], o);
  }
  ::close(ready[0]);
  registry.stamp_all(next_seed);
  // If the child already failed, this write gets EPIPE (SIGPIPE is ignored); its status says why.
  bool told_child = ::write(ready[1], "x", 1) == 1;
  int write_errno = errno;
  ::close(ready[1]);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) stress::fail("waitpid: %s", strerror(errno));
  }
  check_child_status(pid, status, fork_no);
  if (!told_child) stress::fail("write to the child: %s", strerror(write_errno));
  if (!registry.first_has_stamp(next_seed))
    stress::fail("parent: registry object 0 lost the parent's write (child's write leaked?)");
  registry.verify_all(next_seed, "parent: registry object after the child ran");
}

void spawn_true() {
  pid_t pid;
  char arg0[] = "true";
  char* args[] = {arg0, nullptr};
  int rc = posix_spawn(&pid, "/bin/true", nullptr, nullptr, args, environ);
  if (rc != 0) stress::fail("posix_spawn /bin/true: %s", strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) stress::fail("waitpid: %s", strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    stress::fail("posix_spawn'ed /bin/true failed (status 0x%x)", status);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  stress::g_watchdog_hook = kill_children;
  stress::arm_watchdog(static_cast<unsigned>(o.timeout),
                       "fork-stress did not finish in time (deadlock in fork or a child?)");
  signal(SIGPIPE, SIG_IGN);
  std::printf("fork-stress: %" PRIu64 " forks, %" PRIu64 " worker threads, %" PRIu64
              " registry objects, seed %" PRIu64 "\n",
              o.forks, o.threads, o.objects, o.seed);
  std::fflush(stdout);

  stress::CompactFn mesh_compact = stress::find_mesh_compact();
  stress::ChurnConfig cfg;
  cfg.working_set = 2000;
  cfg.seed = o.seed;
  stress::Exchange exchange(256);
  stress::Budget budget(0);  // unbounded: until stop()
  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < o.threads; ++t)
    workers.emplace_back([&, t] { stress::churn(cfg, exchange, budget, o.seed + 31 * t); });

  auto start = stress::Clock::now();
  Registry registry(o.objects, o.seed ^ 0x5eed);
  uint64_t compactions = 0, spawns = 0;
  for (uint64_t i = 1; i <= o.forks; ++i) {
    registry.churn();
    if (o.compact_every != 0 && i % o.compact_every == 0) {
      stress::compact_now(mesh_compact);
      ++compactions;
    }
    uint64_t gen_seed = generation_seed(o.seed, 2 * i),
             next_seed = generation_seed(o.seed, 2 * i + 1);
    registry.stamp_all(gen_seed);
    fork_once(registry, gen_seed, next_seed, i, o);
    if (o.spawn_every != 0 && i % o.spawn_every == 0) {
      spawn_true();
      ++spawns;
    }
    if (!o.quiet && (i % std::max<uint64_t>(1, o.forks / 10) == 0 || i == o.forks)) {
      std::printf("- forks done: %" PRIu64 "/%" PRIu64 ", %.2f s\n", i, o.forks,
                  stress::seconds_since(start));
      std::fflush(stdout);
    }
  }

  budget.stop();
  for (std::thread& w : workers) w.join();
  exchange.drain(o.seed);
  registry.release_all(generation_seed(o.seed, 2 * o.forks + 1));
  std::printf("fork-stress: OK: %" PRIu64 " forks, %" PRIu64 " spawns, %" PRIu64
              " compactions (%s) in %.2f s\n",
              o.forks, spawns, compactions, mesh_compact ? "mesh_compact" : "malloc_trim",
              stress::seconds_since(start));
  return 0;
}
