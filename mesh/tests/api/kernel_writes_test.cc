// System calls that write into the heap while it is meshed (docs/behaviour.md E22; issue "Never harm
// the host, part 2", item 2): with the write-protection service (meshing/write_protect.h), a call
// that writes into a span being meshed waits for the mesh like a thread's store does, so no
// call fails with EFAULT, whether or not libmesh wraps it. The calls here are raw syscall(2)s,
// which no wrapper can see. docs/host-contract.md, section 5.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "api_test_util.h"
#include "mesh/mesh.h"

namespace {

using mesh_api_test::ChildResult;
using mesh_api_test::RunInChild;

// Large enough for every buffer below (struct stat is 144 bytes), and a class that meshes.
constexpr size_t kBuf = 256;

mesh_stats Stats() {
  mesh_stats s{};
  mesh_get_stats(&s);
  return s;
}

// One fragmented round: a quarter of kObjects buffers stay live (the calls write into them).
struct Round {
  std::vector<char*> live;
  explicit Round(uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<char*> all(40000);
    for (auto& p : all) {
      p = static_cast<char*>(malloc(kBuf));
      memset(p, 0x5a, kBuf);
    }
    for (char* p : all) {
      if (rng() % 4 == 0) {
        live.push_back(p);
      } else {
        free(p);
      }
    }
  }
  ~Round() {
    for (char* p : live) free(p);
  }
};

struct Counts {
  long meshes = 0, calls = 0, waits = 0;
  long efault[4] = {};  // fstat, getrandom, epoll_wait, clock_gettime
  long efaults() const { return efault[0] + efault[1] + efault[2] + efault[3]; }
  std::string describe() const {
    char buf[256];
    snprintf(buf, sizeof buf, "%ld meshes, %ld calls, %ld waits; EFAULT: fstat %ld getrandom %ld epoll_wait %ld clock_gettime %ld",
             meshes, calls, waits, efault[0], efault[1], efault[2], efault[3]);
    return buf;
  }
};

// Two threads make raw system calls that write into live buffers of the round being meshed,
// while this thread fragments and compacts, for at least minRounds rounds and then until
// done(counts) or maxRounds.
template <typename Done>
Counts MeshWhileCalling(int minRounds, int maxRounds, Done done) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int pipeFds[2];
  if (ep < 0 || pipe2(pipeFds, O_CLOEXEC) != 0) return Counts{};
  if (write(pipeFds[1], "x", 1) != 1) return Counts{};
  epoll_event ev{};
  ev.events = EPOLLIN;
  epoll_ctl(ep, EPOLL_CTL_ADD, pipeFds[0], &ev);
  std::atomic<bool> stop{false};
  std::atomic<std::vector<char*>*> targets{nullptr};
  std::atomic<long> calls{0};
  std::atomic<long> efault[4] = {};
  auto caller = [&](size_t start) {
    size_t i = start;
    while (!stop.load(std::memory_order_relaxed)) {
      std::vector<char*>* t = targets.load(std::memory_order_acquire);
      if (t == nullptr || t->empty()) continue;
      char* b = (*t)[(i += 13) % t->size()];
      if (syscall(SYS_fstat, pipeFds[0], b) < 0 && errno == EFAULT) efault[0]++;
      if (syscall(SYS_getrandom, b, 16, 0) < 0 && errno == EFAULT) efault[1]++;
      if (syscall(SYS_epoll_wait, ep, b, 1, 0) < 0 && errno == EFAULT) efault[2]++;
      if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, b) < 0 && errno == EFAULT) efault[3]++;
      calls += 4;
    }
  };
  std::thread a(caller, 0), b(caller, 7);
  Counts c;
  uint64_t waitsBefore = Stats().barrier_waits;
  std::vector<std::unique_ptr<Round>> rounds;  // freed only after the callers stopped
  for (int round = 0; round < maxRounds; ++round) {
    rounds.push_back(std::make_unique<Round>(1000 + round));
    targets.store(&rounds.back()->live, std::memory_order_release);
    c.meshes += static_cast<long>(mesh_compact());
    c.waits = static_cast<long>(Stats().barrier_waits - waitsBefore);
    for (int k = 0; k < 4; ++k) c.efault[k] = efault[k].load();
    c.calls = calls.load();
    if (round + 1 >= minRounds && done(c)) break;
  }
  stop = true;
  a.join();
  b.join();
  for (int k = 0; k < 4; ++k) c.efault[k] = efault[k].load();
  c.calls = calls.load();
  close(ep);
  close(pipeFds[0]);
  close(pipeFds[1]);
  return c;
}

// Unless the machine cannot run the service (not root, an old kernel), it must be running.
#define REQUIRE_SERVICE_OR_SKIP()                                                                         \
  do {                                                                                                    \
    if (Stats().kernel_writes_wait == 0) {                                                                \
      ASSERT_FALSE(mesh_api_test::UffdExpected()) << "the write-protection service should run here";      \
      GTEST_SKIP() << "no userfaultfd write protection on this machine (see the user guide, section 8)"; \
    }                                                                                                     \
  } while (0)

TEST(KernelWrites, E22_UnwrappedSystemCallsNeverFailWithEfaultWhileMeshing) {
  { Round warm(1); mesh_compact(); }  // starts the service
  REQUIRE_SERVICE_OR_SKIP();
  // 20 rounds, and more (up to 400) until some call has met a mesh: on a loaded machine the
  // callers may get little CPU time.
  Counts c = MeshWhileCalling(20, 400, [](const Counts& n) { return n.waits > 0; });
  std::printf("%s\n", c.describe().c_str());
  EXPECT_GT(c.meshes, 0);
  EXPECT_GT(c.calls, 0);
  EXPECT_EQ(c.efaults(), 0) << c.describe();
  // Only these calls write into the spans being meshed: without a wait none met a mesh, and the
  // test proved nothing.
  EXPECT_GT(c.waits, 0) << "no call met a span being meshed: " << c.describe();
}

// The service's descriptor is in a table of its own: a program that closes every descriptor and
// reuses the numbers cannot take it away.
TEST(KernelWrites, E22_ClosingEveryDescriptorLeavesTheProtectionInPlace) {
  { Round warm(2); mesh_compact(); }
  REQUIRE_SERVICE_OR_SKIP();
  ChildResult r = RunInChild(
      [] {
        { Round warm(3); mesh_compact(); }  // the child's own service
        CHILD_CHECK(Stats().kernel_writes_wait == 1, 10);
        CHILD_CHECK(syscall(SYS_close_range, 3u, ~0u, 0) == 0, 11);
        int reused[8];
        for (int& fd : reused) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHILD_CHECK(reused[0] == 3, 12);
        Counts c = MeshWhileCalling(20, 400, [](const Counts& n) { return n.waits > 0; });
        fprintf(stderr, "%s\n", c.describe().c_str());
        CHILD_CHECK(c.meshes > 0 && c.calls > 0, 13);
        CHILD_CHECK(c.efaults() == 0, 14);
        CHILD_CHECK(c.waits > 0, 15);
        CHILD_CHECK(Stats().kernel_writes_wait == 1, 16);
        return 0;
      },
      120000);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

// The control: with MESH_UFFD=0 (mprotect, as before the service) the same calls do fail. It
// shows that the test above can fail, and is the limit the user guide documents.
TEST(KernelWrites, E22_WithMprotectTheSameCallsCanFailWithEfault) {
  { Round warm(4); mesh_compact(); }  // the service runs (where it can), and is then switched off
  ASSERT_EQ(mesh_set_option("uffd", 0), 0);
  EXPECT_EQ(Stats().kernel_writes_wait, 0u);
  Counts c = MeshWhileCalling(10, 400, [](const Counts& n) { return n.efaults() > 0; });
  ASSERT_EQ(mesh_set_option("uffd", 1), 0);
  std::printf("%s\n", c.describe().c_str());
  EXPECT_GT(c.meshes, 0);
  EXPECT_GT(c.efaults(), 0) << "no EFAULT in " << c.describe();
  EXPECT_EQ(Stats().kernel_writes_wait, mesh_api_test::UffdExpected() ? 1u : 0u);
}

}  // namespace
