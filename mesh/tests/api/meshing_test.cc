// Meshing through the process allocator (docs/behaviour.md G27-G31, E21-E22): contents, PSS,
// concurrent writers, kernel writes, application SIGSEGV handlers, blocked SIGSEGV, fork after
// meshing. (G28, aliasing seen in the page frames, is in meshing_frames_test.cc.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/mman.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "api_test_util.h"
#include "harness/pss.h"
#include "mesh/mesh.h"

extern char** environ;

namespace {

using mesh_api_test::CheckPattern;
using mesh_api_test::Fragmented;
using mesh_api_test::FillPattern;
using mesh_api_test::WaitPidTimeout;

using mesh_api_test::kObj;

mesh_stats Stats() {
  mesh_stats s;
  mesh_get_stats(&s);
  return s;
}

TEST(Meshing, G27_G29_CompactionKeepsEveryObjectAndNoOverlap) {
  Fragmented f(200000);
  size_t meshes = mesh_compact();
  EXPECT_GT(meshes, 0u);
  EXPECT_TRUE(f.intact());
  std::vector<uintptr_t> addrs;
  for (auto* p : f.live) addrs.push_back(reinterpret_cast<uintptr_t>(p));
  std::sort(addrs.begin(), addrs.end());
  for (size_t i = 1; i < addrs.size(); ++i) ASSERT_GE(addrs[i] - addrs[i - 1], kObj);
  for (auto* p : f.live) ASSERT_GE(malloc_usable_size(p), kObj);
}

// malloc_usable_size answers a live small object without pinning its span (the page-map entry is
// read again instead): while other threads mesh the spans, every answer is still the object's
// size class.
TEST(Meshing, UsableSizeStaysExactWhileSpansMesh) {
  Fragmented f(200000);
  const size_t want = malloc_usable_size(f.live.front());
  ASSERT_GE(want, kObj);
  std::atomic<bool> done{false};
  std::atomic<size_t> meshes{0};
  std::thread mesher([&] {
    while (!done.load()) meshes += mesh_compact();
  });
  size_t wrong = 0, asked = 0;
  auto start = std::chrono::steady_clock::now();
  while (meshes.load() == 0 || std::chrono::steady_clock::now() - start < std::chrono::milliseconds(300)) {
    for (auto* p : f.live) {
      wrong += malloc_usable_size(p) != want;
      ++asked;
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(60)) break;
  }
  done = true;
  mesher.join();
  EXPECT_GT(meshes.load(), 0u) << "nothing meshed while the sizes were asked";
  EXPECT_EQ(wrong, 0u) << "of " << asked;
  EXPECT_TRUE(f.intact());
}

// G28 (meshed pages share a frame) is in meshing_frames_test.cc: it reads libmesh's page map.

TEST(Meshing, G31_PssFallsAfterMeshing) {
  Fragmented f(400000, 3);
  mesh_release_free_memory();
  long before = harness::pss_kib();
  mesh_stats s0 = Stats();
  size_t meshes = mesh_compact();
  long after = harness::pss_kib();
  mesh_stats s1 = Stats();
  ASSERT_GT(meshes, 0u);
  long freedKiB = static_cast<long>((s1.meshed_bytes_total - s0.meshed_bytes_total) / 1024);
  std::printf("PSS %ld -> %ld KiB after %zu meshes (%ld KiB meshed)\n", before, after, meshes, freedKiB);
  EXPECT_LT(after, before);
  EXPECT_GE(before - after, freedKiB / 2) << "PSS should fall by about the meshed bytes";
  EXPECT_TRUE(f.intact());
}

TEST(Meshing, G29_WriterThreadsLoseNoIncrementDuringCompactionLoops) {
  Fragmented f(100000, 4);
  std::atomic<bool> stop{false};
  std::vector<uint64_t*> counters;
  for (auto* p : f.live) counters.push_back(reinterpret_cast<uint64_t*>(p));
  for (auto* c : counters) *c = 0;
  std::vector<uint64_t> expected(counters.size(), 0);
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      for (size_t i = 0; i < counters.size(); i += 7) {
        ++*counters[i];
        ++expected[i];
      }
    }
  });
  size_t meshes = 0;
  for (int i = 0; i < 20; ++i) {
    meshes += mesh_compact();
    for (int k = 0; k < 2000; ++k) free(malloc(kObj));
  }
  stop = true;
  writer.join();
  EXPECT_GT(meshes, 0u);
  for (size_t i = 0; i < counters.size(); ++i) ASSERT_EQ(*counters[i], expected[i]) << i;
}

TEST(Meshing, E22_KernelWritesDuringMeshingNeverFailWithEfault) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);  // neither thread may block when the other stops
  std::atomic<bool> stop{false};
  std::atomic<long> efaults{0}, reads{0};
  // The reader reads into the objects of the heap being meshed right now.
  std::atomic<std::vector<unsigned char*>*> targets{nullptr};
  std::thread reader([&] {
    size_t i = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      std::vector<unsigned char*>* t = targets.load(std::memory_order_acquire);
      if (t == nullptr || t->empty()) continue;
      unsigned char* buf = (*t)[(i += 7) % t->size()];
      ssize_t r = read(fds[0], buf, 8);
      if (r < 0 && errno == EFAULT) efaults++;
      if (r == 8) reads++;
    }
  });
  std::thread feeder([&] {
    char data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    while (!stop.load(std::memory_order_relaxed)) {
      if (write(fds[1], data, 8) < 0 && errno != EAGAIN) break;
    }
  });
  size_t meshes = 0;
  uint64_t waitsBefore = Stats().barrier_waits;
  std::vector<std::unique_ptr<Fragmented>> rounds;  // freed only after the reader stopped
  // 40 rounds, and more (up to 400) while no read has met a mesh yet: on a loaded machine the
  // reader may get little CPU time.
  for (int round = 0; round < 40 || (round < 400 && Stats().barrier_waits == waitsBefore); ++round) {
    rounds.push_back(std::make_unique<Fragmented>(40000, 100 + round));
    targets.store(&rounds.back()->live, std::memory_order_release);
    meshes += mesh_compact();
  }
  stop = true;
  feeder.join();
  reader.join();
  close(fds[0]);
  close(fds[1]);
  uint64_t waits = Stats().barrier_waits - waitsBefore;
  std::printf("%zu meshes, %ld reads, %llu barrier waits\n", meshes, reads.load(),
              static_cast<unsigned long long>(waits));
  EXPECT_GT(meshes, 0u);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(efaults.load(), 0);
  // Only this test's reader writes into spans while they are meshed here, and only through
  // read(): without a wait no read ever met a mesh, and the test proved nothing.
  EXPECT_GT(waits, 0u) << "no read() met a span being meshed";
}

sigjmp_buf g_jump;
std::atomic<int> g_appHandlerCalls{0};
void AppHandler(int) {
  g_appHandlerCalls++;
  siglongjmp(g_jump, 1);
}

// Writes to a protected page of our own, outside the heap: a real fault for the application.
bool RealFaultReachesApp() {
  void* page = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bool reached = false;
  if (sigsetjmp(g_jump, 1) == 0) {
    *static_cast<volatile char*>(page) = 1;
  } else {
    reached = true;
  }
  munmap(page, 4096);
  return reached;
}

TEST(Meshing, E21_ApplicationSegvHandlerStillGetsRealFaultsAndMeshingWorks) {
  Fragmented warm(50000, 6);
  ASSERT_GT(mesh_compact(), 0u);  // the barrier handler is installed now
  struct sigaction sa {}, old {};
  sa.sa_handler = AppHandler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGSEGV, &sa, &old), 0);
  EXPECT_TRUE(RealFaultReachesApp());
  Fragmented f(100000, 7);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) {
      for (auto* p : f.live) p[kObj - 1] = p[0];
    }
  });
  EXPECT_GT(mesh_compact(), 0u);
  stop = true;
  writer.join();
  EXPECT_TRUE(f.intact());
  // signal() too.
  signal(SIGSEGV, AppHandler);
  EXPECT_TRUE(RealFaultReachesApp());
  EXPECT_GE(g_appHandlerCalls.load(), 2);
  sigaction(SIGSEGV, &old, nullptr);
}

TEST(Meshing, E21_ThreadWithSegvBlockedSurvivesMeshing) {
  Fragmented f(100000, 8);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    while (!stop) {
      for (auto* p : f.live) p[kObj - 1] = p[0];
    }
  });
  size_t meshes = 0;
  for (int i = 0; i < 5; ++i) meshes += mesh_compact();
  stop = true;
  writer.join();
  EXPECT_GT(meshes, 0u);
  EXPECT_TRUE(f.intact());
}

TEST(Meshing, E19_ForkAfterMeshingGivesTheChildEveryObjectAndIsolatesWrites) {
  Fragmented f(100000, 9);
  ASSERT_GT(mesh_compact(), 0u);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char c;
    if (read(go[0], &c, 1) != 1) _exit(10);
    if (!f.intact()) _exit(11);          // the parent's later writes are not visible
    for (auto* p : f.live) p[0] ^= 0xff;  // and ours do not reach the parent
    Fragmented more(50000, 10);
    mesh_compact();                        // meshing works in the child
    for (auto* p : f.live) p[0] ^= 0xff;
    _exit(f.intact() && more.intact() ? 0 : 12);
  }
  for (auto* p : f.live) p[1] ^= 0x5a;  // after fork: must stay in the parent
  for (auto* p : f.live) p[1] ^= 0x5a;
  unsigned char saved = f.live[0][2];
  f.live[0][2] = 0xee;
  ASSERT_EQ(write(go[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: no go signal, 11: the child saw the parent's later write, "
                                       "12: the child's heap broke after its own writes or meshing";
  f.live[0][2] = saved;
  EXPECT_TRUE(f.intact());
}

TEST(Meshing, ReportShowsMeshFigures) {
  Fragmented f(50000, 11);
  mesh_compact();
  char buf[4096];
  size_t need = mesh_stats_json(buf, sizeof buf);
  ASSERT_LT(need, sizeof buf);
  EXPECT_NE(std::strstr(buf, "\"mesh_count\":"), nullptr);
  mesh_stats s = Stats();
  EXPECT_GT(s.mesh_count, 0u);
  EXPECT_GT(s.meshed_bytes_total, 0u);
  EXPECT_GT(s.mapping_limit, 0u);
  EXPECT_LT(s.mapping_count, s.mapping_limit);
}

// ---- fork with a partly meshed heap (docs/behaviour.md E19, DESIGN.md invariant 6) ------------
// Only meshed spans live in the shared memfd; everything else is private anonymous memory that
// fork copies lazily. Both kinds must be private to each side after fork.

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bool ReadByteWithin(int fd, char* c, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  return poll(&pfd, 1, timeout_ms) == 1 && read(fd, c, 1) == 1;
}

struct Block {
  char* p;
  size_t n;
};

// Objects allocated after the compaction: small ones (some land in free slots of meshed spans,
// some in fresh spans), sizes that never mesh (4 KiB and more) and large objects.
std::vector<Block> PlainBlocks() {
  std::vector<Block> out;
  const size_t sizes[] = {16, kObj, 200, 1000, 4096, 6000, 16384, 100000, 1 << 20};
  for (size_t n : sizes) {
    int count = n <= 1000 ? 400 : n <= 16384 ? 40 : 4;
    for (int k = 0; k < count; ++k) out.push_back({static_cast<char*>(malloc(n)), n});
  }
  return out;
}

void FillBlocks(std::vector<Block>& blocks, uint64_t phase) {
  for (size_t i = 0; i < blocks.size(); ++i) FillPattern(blocks[i].p, blocks[i].n, phase * 1000003 + i);
}

size_t DamagedBlocks(const std::vector<Block>& blocks, uint64_t phase) {
  size_t bad = 0;
  for (size_t i = 0; i < blocks.size(); ++i) bad += !CheckPattern(blocks[i].p, blocks[i].n, phase * 1000003 + i);
  return bad;
}

TEST(Meshing, E19_ForkIsolatesMeshedAndUnmeshedObjectsBothWays) {
  Fragmented f(150000, 21);
  ASSERT_GT(mesh_compact(), 0u);
  ASSERT_GT(Stats().meshed_pages, 0u);
  std::vector<Block> meshed, plain = PlainBlocks();
  for (auto* p : f.live) meshed.push_back({reinterpret_cast<char*>(p), kObj});
  FillBlocks(meshed, 1);
  FillBlocks(plain, 1);
  int c2p[2], p2c[2];
  ASSERT_EQ(pipe(c2p), 0);
  ASSERT_EQ(pipe(p2c), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char c;
    if (DamagedBlocks(meshed, 1) + DamagedBlocks(plain, 1) != 0) _exit(10);
    FillBlocks(meshed, 3);  // the child's writes: never seen by the parent
    FillBlocks(plain, 3);
    if (write(c2p[1], "c", 1) != 1) _exit(11);
    if (!ReadByteWithin(p2c[0], &c, 60000)) _exit(12);
    if (DamagedBlocks(meshed, 3) != 0) _exit(13);  // the parent's later writes are not seen
    if (DamagedBlocks(plain, 3) != 0) _exit(14);
    // The child's heap keeps working: free half, allocate, mesh, check the rest.
    for (size_t i = 0; i < meshed.size(); i += 2) free(meshed[i].p);
    // A class nobody used yet: meshing works in the child (the child's background thread may
    // mesh some of it before mesh_compact does: count the meshes, whoever made them).
    uint64_t meshesBefore = Stats().mesh_count;
    Fragmented more(30000, 22, 176);
    mesh_compact();
    if (Stats().mesh_count == meshesBefore) _exit(17);
    for (size_t i = 1; i < meshed.size(); i += 2) {
      if (!CheckPattern(meshed[i].p, kObj, 3 * 1000003 + i)) _exit(15);
    }
    _exit(more.intact() && DamagedBlocks(plain, 3) == 0 ? 0 : 16);
  }
  char c = 0;
  ASSERT_TRUE(ReadByteWithin(c2p[0], &c, 60000)) << "the child did not reach its write phase";
  EXPECT_EQ(DamagedBlocks(meshed, 1), 0u) << "the child's writes to meshed objects reached the parent";
  EXPECT_EQ(DamagedBlocks(plain, 1), 0u) << "the child's writes to other objects reached the parent";
  FillBlocks(meshed, 2);
  FillBlocks(plain, 2);
  ASSERT_EQ(write(p2c[1], "p", 1), 1);
  int status = 0;
  ASSERT_TRUE(WaitPidTimeout(pid, &status, 120000)) << "fork child hung";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "child status " << status << " (10: inherited objects damaged, 13/14: the parent's later "
      << "writes to meshed/other objects visible, 15/16: the child's heap broke afterwards, 17: no "
      << "mesh in the child)";
  EXPECT_EQ(DamagedBlocks(meshed, 2) + DamagedBlocks(plain, 2), 0u);
  // The parent meshes on after the fork too.
  for (size_t i = 0; i < meshed.size(); i += 2) FillPattern(meshed[i].p, kObj, 0);
  Fragmented later(30000, 23, 112);  // a class the test has not used yet
  EXPECT_GT(mesh_compact(), 0u);
  EXPECT_TRUE(later.intact());
  for (size_t i = 1; i < meshed.size(); i += 2) ASSERT_TRUE(CheckPattern(meshed[i].p, kObj, 2 * 1000003 + i));
  for (int fd : {c2p[0], c2p[1], p2c[0], p2c[1]}) close(fd);
  for (Block& b : plain) free(b.p);
}

TEST(Meshing, E19_ForkOfALargeHeapChildVerifiesEveryObject) {
  // About 192 MiB of small objects, three in four freed and the rest compacted.
  constexpr size_t kBytes = size_t{192} << 20;
  std::mt19937_64 rng(31);
  std::vector<Block> all;
  for (size_t total = 0; total < kBytes;) {
    size_t n = 16 + rng() % 241;
    all.push_back({static_cast<char*>(malloc(n)), n});
    total += n;
  }
  std::vector<Block> live;
  for (Block& b : all) {
    if (rng() % 4 != 0) {
      free(b.p);
    } else {
      live.push_back(b);
    }
  }
  all.clear();
  all.shrink_to_fit();
  FillBlocks(live, 7);
  EXPECT_GT(mesh_compact(), 0u);
  double t0 = NowMs();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(DamagedBlocks(live, 7) == 0 ? 0 : 10);
  double forkMs = NowMs() - t0;
  // The parent goes on writing at once: the child must still see the heap as of the fork.
  for (size_t i = 0; i < live.size(); i += 3) live[i].p[0] ^= 0x7f;
  int status = 0;
  ASSERT_TRUE(WaitPidTimeout(pid, &status, 120000)) << "fork child hung";
  std::printf("fork of %zu live objects (%.0f MiB requested, %llu meshed pages): %.1f ms in the parent\n",
              live.size(), kBytes / 1048576.0, static_cast<unsigned long long>(Stats().meshed_pages), forkMs);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child found damaged objects";
  for (size_t i = 0; i < live.size(); i += 3) live[i].p[0] ^= 0x7f;
  EXPECT_EQ(DamagedBlocks(live, 7), 0u);
  for (Block& b : live) free(b.p);
}

// Threads allocate and free (content-checked) and one thread meshes in a loop until stopped.
class BusyHeap {
 public:
  BusyHeap() {
    for (int t = 0; t < 2; ++t) {
      threads_.emplace_back([this, t] {
        std::mt19937_64 rng(500 + t);
        std::vector<Block> ring(512, Block{nullptr, 0});
        for (uint64_t i = 0; !stop_.load(std::memory_order_relaxed); ++i) {
          Block& b = ring[rng() % ring.size()];
          if (b.p != nullptr) {
            if (!CheckPattern(b.p, b.n, reinterpret_cast<uintptr_t>(b.p))) errors_++;
            free(b.p);
          }
          b.n = 8 + rng() % (rng() % 16 == 0 ? 20000 : 600);
          b.p = static_cast<char*>(malloc(b.n));
          if (b.p == nullptr) {
            errors_++;
            continue;
          }
          FillPattern(b.p, b.n, reinterpret_cast<uintptr_t>(b.p));
          ops_++;
        }
        for (Block& b : ring) free(b.p);
      });
    }
    threads_.emplace_back([this] {
      for (uint64_t round = 0; !stop_.load(std::memory_order_relaxed); ++round) {
        Fragmented f(20000, 600 + round);
        meshes_ += mesh_compact();
        if (!f.intact()) errors_++;
        rounds_++;
      }
    });
  }
  ~BusyHeap() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // Until the threads have done some work; a heap that cannot mesh fails instead of hanging.
  void WaitForWork() {
    while (ops_.load() < 2000 || (meshes_.load() == 0 && rounds_.load() < 5)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_GT(meshes_.load(), 0u) << "no mesh while the threads ran";
  }
  uint64_t errors() const { return errors_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> errors_{0}, ops_{0}, meshes_{0}, rounds_{0};
  std::vector<std::thread> threads_;
};

bool ReapWithin(pid_t pid, int timeout_ms, int* status) {
  if (WaitPidTimeout(pid, status, timeout_ms)) return true;
  kill(pid, SIGKILL);
  waitpid(pid, status, 0);
  return false;
}

TEST(Meshing, E19_ForkWhileThreadsAllocateAndMesh) {
  BusyHeap busy;
  busy.WaitForWork();
  Fragmented mine(30000, 40);
  for (int round = 0; round < 25; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (!mine.intact()) _exit(10);
      Fragmented child(20000, 41 + round);  // allocate and mesh in the child
      mesh_compact();
      _exit(child.intact() && mine.intact() ? 0 : 11);
    }
    int status = 0;
    ASSERT_TRUE(ReapWithin(pid, 20000, &status)) << "fork child " << round << " deadlocked";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << round << " status " << status;
  }
  busy.Stop();
  EXPECT_EQ(busy.errors(), 0u);
  EXPECT_TRUE(mine.intact());
}

// Separate function: keeps vfork's shared-stack child away from the test's locals.
__attribute__((noinline)) pid_t VforkExecTrue(const char* prog) {
  char* argv[] = {const_cast<char*>(prog), nullptr};
  pid_t pid = vfork();
  if (pid == 0) {
    execve(prog, argv, environ);
    _exit(127);
  }
  return pid;
}

TEST(Meshing, E19_PosixSpawnAndVforkExecWhileThreadsAllocateAndMesh) {
  const char* prog = access("/bin/true", X_OK) == 0 ? "/bin/true" : "/usr/bin/true";
  BusyHeap busy;
  busy.WaitForWork();
  for (int round = 0; round < 30; ++round) {
    pid_t pid = 0;
    char* argv[] = {const_cast<char*>(prog), nullptr};
    ASSERT_EQ(posix_spawn(&pid, prog, nullptr, nullptr, argv, environ), 0);
    int status = 0;
    ASSERT_TRUE(ReapWithin(pid, 10000, &status)) << "posix_spawn child " << round << " hung";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "posix_spawn round " << round;
    pid = VforkExecTrue(prog);
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(ReapWithin(pid, 10000, &status)) << "vfork child " << round << " hung";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "vfork round " << round;
  }
  busy.Stop();
  EXPECT_EQ(busy.errors(), 0u);
}

}  // namespace
