// docs/behaviour.md section C: misuse is detected cheaply, never made worse (C13-C15).
//
// libmesh reports misuse as one stderr line, then abort():
//   mesh: double free of 0x<hex>
//   mesh: invalid free of 0x<hex>
// The exact message (with the address) is libmesh-only; against glibc the harness is
// validated with glibc's own wording where glibc detects the misuse, and skips where it
// cannot (cross-thread double free, large blocks, freed-pointer realloc).
#include <gtest/gtest.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {


unsigned char g_global_buffer[256];

std::string DoubleFreeRegex(const void* p) {
  if (HaveLibmesh()) return "mesh: double free of " + AddrRegex(p);
  return "double free";  // glibc: "free(): double free detected in tcache 2" and similar
}

// glibc does not validate the pointers of C14/C15 and may simply crash (SIGSEGV, no message),
// ignore the call or answer something: the very behaviour the contract forbids. A glibc run
// accepts that, so that it still checks the harness. libmesh stops the program with one line on
// stderr for each of these (docs/user-guide.md, section 5): a libmesh run demands exactly that.
std::string InvalidFreeRegex(const void* p) {
  if (HaveLibmesh()) return "mesh: invalid free of " + AddrRegex(p);
  return "";
}

// Exit predicate of the misuse tests: libmesh aborts; glibc may abort, crash, or ignore the
// misuse and exit cleanly.
bool AbortsUnderLibmesh(int status) {
  bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  if (HaveLibmesh()) return aborted;
  return aborted || (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
         (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
}

class MisuseTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "fast"); }
};

// ---- C13: double free --------------------------------------------------------------------

using DoubleFreeTest = MisuseTest;

TEST_P(DoubleFreeTest, C13_ImmediateDoubleFreeAborts) {
  size_t n = GetParam();
  if (!HaveLibmesh() && n > 8192) GTEST_SKIP() << "glibc does not detect double free of mmapped blocks";
  void* p = malloc(Opaque(n));
  ASSERT_NE(p, nullptr);
  memset(p, 0x11, n);
  EXPECT_DEATH(
      {
        void* again = OpaquePtr(p);  // taken before the free: no use-after-free warning
        free(p);
        free(again);
      },
      DoubleFreeRegex(p));
  free(p);  // the parent's copy is still live
}

TEST_P(DoubleFreeTest, C13_DoubleFreeAfterOtherFreesAborts) {
  size_t n = GetParam();
  if (!HaveLibmesh() && n > 1024) GTEST_SKIP() << "glibc only detects this for tcache sizes";
  std::vector<void*> others;
  for (int i = 0; i < 10; ++i) others.push_back(malloc(Opaque(n)));
  void* p = malloc(Opaque(n));
  ASSERT_NE(p, nullptr);
  EXPECT_DEATH(
      {
        void* again = OpaquePtr(p);
        free(p);
        for (void* o : others) free(o);
        free(again);
      },
      DoubleFreeRegex(p));
  free(p);
  for (void* o : others) free(o);
}

TEST_P(DoubleFreeTest, C13_CrossThreadDoubleFreeAborts) {
  MESH_REQUIRE_LIBMESH();  // glibc's tcache check only sees its own thread's cache
  size_t n = GetParam();
  void* p = malloc(Opaque(n));
  ASSERT_NE(p, nullptr);
  EXPECT_DEATH(
      {
        // Both threads exist (and have set up their heaps) before the first free: nothing
        // allocates between the two frees, so the freed block cannot have been reused by then
        // (a double free of a reused block is indistinguishable from a valid free).
        std::atomic<int> step{0};
        std::thread b([p, &step] {
          free(malloc(Opaque(64)));
          step = 1;
          while (step.load() != 2) std::this_thread::yield();
          free(OpaquePtr(p));
        });
        while (step.load() != 1) std::this_thread::yield();
        std::thread a([p] { free(p); });
        a.join();
        step = 2;
        b.join();
      },
      DoubleFreeRegex(p));
  // A live thread frees first, a second thread frees again while the first is still alive. b
  // is started (its start allocates) before a frees: an allocation between the frees could
  // reuse the block, and then the second free would be a valid one.
  void* q = malloc(Opaque(n));
  ASSERT_NE(q, nullptr);
  EXPECT_DEATH(
      {
        std::thread a([q] {
          std::atomic<int> freed{0};
          std::thread b([q, &freed] {
            while (freed.load() == 0) std::this_thread::yield();
            free(OpaquePtr(q));
          });
          free(q);
          freed = 1;
          b.join();
        });
        a.join();
      },
      DoubleFreeRegex(q));
  free(p);
  free(q);
}

// Frees of objects whose span the freeing thread does not hold are stacked per thread (a small
// cache that malloc reuses) and reach their spans later in batches. A second free must be seen
// wherever the first one is: still stacked, already batched, or stacked by another thread.
std::vector<void*> AllocateMany(size_t n, size_t count) {
  std::vector<void*> v;
  for (size_t i = 0; i < count; ++i) v.push_back(malloc(Opaque(n)));
  return v;
}

TEST_P(DoubleFreeTest, C13_DoubleFreeOfStackedObjectAborts) {
  size_t n = GetParam();
  if (!HaveLibmesh() && n > 1024) GTEST_SKIP() << "glibc only detects this for tcache sizes";
  // The first objects' spans are full and no longer the thread's current span.
  std::vector<void*> v = AllocateMany(n, 600);
  void* p = v[0];
  EXPECT_DEATH(
      {
        void* again = OpaquePtr(p);
        free(p);
        free(again);
      },
      DoubleFreeRegex(p));
  for (void* o : v) free(o);
}

TEST_P(DoubleFreeTest, C13_DoubleFreeAfterBatchedFreesAborts) {
  MESH_REQUIRE_LIBMESH();  // glibc's tcache holds at most 7 blocks per size
  size_t n = GetParam();
  std::vector<void*> v = AllocateMany(n, 600);
  void* p = v[0];
  EXPECT_DEATH(
      {
        void* again = OpaquePtr(p);
        free(p);
        for (size_t i = 1; i < 300; ++i) free(v[i]);  // overflows the stack: p is batched
        free(again);
      },
      DoubleFreeRegex(p));
  for (void* o : v) free(o);
}

TEST_P(DoubleFreeTest, C13_OwnerFreesObjectAnotherThreadFreedAborts) {
  MESH_REQUIRE_LIBMESH();  // glibc's tcache check only sees its own thread's cache
  size_t n = GetParam();
  void* p = malloc(Opaque(n));  // from this thread's current span
  ASSERT_NE(p, nullptr);
  EXPECT_DEATH(
      {
        std::atomic<int> step{0};
        std::thread other([p, &step] {
          free(p);  // stacked by the other thread, which stays alive
          step = 1;
          while (step.load() != 2) std::this_thread::yield();
        });
        while (step.load() != 1) std::this_thread::yield();
        free(OpaquePtr(p));  // the owner frees it again
        step = 2;
        other.join();
      },
      DoubleFreeRegex(p));
  free(p);
}

// The other thread's free reaches the owner's span as a remote free (its stack is flushed by
// malloc_trim while the owner keeps the span attached), so the slot is still live there until
// the owner folds it. A second free now, by either thread, must still be seen (the object keeps
// the freed key until it is handed out again; the fast path reads no remote bits).
void FreeRemotelyThenAgain(size_t n, bool ownerFreesAgain) {
  void* p = malloc(Opaque(n));  // from this thread's current span
  ASSERT_NE(p, nullptr);
  void* keep = malloc(Opaque(n));  // keeps the span from emptying
  EXPECT_DEATH(
      {
        std::atomic<int> step{0};
        std::thread other([p, ownerFreesAgain, &step] {
          free(p);
          malloc_trim(0);  // hands this thread's freed objects back: p as a remote free
          if (!ownerFreesAgain) {
            free(OpaquePtr(p));
            _exit(0);  // the second free was accepted: the death test fails
          }
          step = 1;
          while (step.load() != 2) std::this_thread::yield();
        });
        while (step.load() != 1) std::this_thread::yield();
        free(OpaquePtr(p));
        step = 2;
        other.join();
      },
      DoubleFreeRegex(p));
  free(keep);
  free(p);
}

TEST_P(DoubleFreeTest, C13_DoubleFreeOfRemotelyFreedObjectAborts) {
  MESH_REQUIRE_LIBMESH();  // glibc's tcache check only sees its own thread's cache
  FreeRemotelyThenAgain(GetParam(), false);
}

TEST_P(DoubleFreeTest, C13_OwnerFreesRemotelyFreedObjectAborts) {
  MESH_REQUIRE_LIBMESH();
  FreeRemotelyThenAgain(GetParam(), true);
}

TEST_P(DoubleFreeTest, C13_DoubleDeleteAborts) {
  size_t n = GetParam();
  if (!HaveLibmesh() && n > 1024) GTEST_SKIP() << "glibc only detects this for tcache sizes";
  char* p = new char[Opaque(n)];
  EXPECT_DEATH(
      {
        char* again = OpaquePtr(p);
        ::operator delete[](p);
        ::operator delete[](again);
      },
      DoubleFreeRegex(p));
  delete[] p;
}

INSTANTIATE_TEST_SUITE_P(Sizes, DoubleFreeTest,
                         ::testing::Values(16, 100, 1000, 8000, 20000, kMiB),
                         [](const ::testing::TestParamInfo<size_t>& param_info) {
                           return "size" + std::to_string(param_info.param);
                         });

// ---- C14: invalid free -------------------------------------------------------------------

// Child body: free(p + offset) must abort (with the message) or be ignored; when ignored, the
// enclosing block must still be allocated: intact, and never handed out again.
[[noreturn]] void FreeInteriorAndCheck(char* p, size_t n, size_t offset) {
  size_t usable = malloc_usable_size(p);
  free(p + offset);
  if (!CheckPattern(p, n, n)) {
    fprintf(stderr, "ENCLOSING_DAMAGED: block %p changed after free(p + %zu)\n", static_cast<void*>(p), offset);
    _exit(3);
  }
  std::vector<char*> others;
  for (int i = 0; i < 3000; ++i) {
    char* q = static_cast<char*>(malloc(n));
    if (!q) _exit(6);
    if (q < p + usable && p < q + n) {
      fprintf(stderr, "ENCLOSING_FREED: malloc(%zu) returned %p inside the live block %p\n", n,
              static_cast<void*>(q), static_cast<void*>(p));
      _exit(4);
    }
    memset(q, 0xEE, n);
    others.push_back(q);
  }
  if (!CheckPattern(p, n, n)) {
    fprintf(stderr, "ENCLOSING_DAMAGED after new allocations\n");
    _exit(5);
  }
  for (char* q : others) free(q);
  free(p);
  fprintf(stderr, "IGNORED_INTACT\n");
  _exit(0);
}

struct InteriorCase {
  size_t size;
  size_t offset;
};

class InteriorFreeTest : public ::testing::TestWithParam<InteriorCase> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "fast"); }
};

TEST_P(InteriorFreeTest, C14_InteriorPointerFreeAbortsOrIsIgnored) {
  const InteriorCase c = GetParam();
  char* p = static_cast<char*>(malloc(Opaque(c.size)));
  ASSERT_NE(p, nullptr);
  FillPattern(p, c.size, c.size);
  EXPECT_EXIT(FreeInteriorAndCheck(p, c.size, c.offset), AbortsUnderLibmesh,
              InvalidFreeRegex(p + c.offset));
  EXPECT_TRUE(CheckPattern(p, c.size, c.size));
  free(p);
}

INSTANTIATE_TEST_SUITE_P(
    Offsets, InteriorFreeTest,
    ::testing::Values(InteriorCase{16, 1}, InteriorCase{16, 8}, InteriorCase{100, 1},
                      InteriorCase{100, 16}, InteriorCase{100, 64}, InteriorCase{1000, 16},
                      InteriorCase{1000, 512}, InteriorCase{8000, 16}, InteriorCase{8000, 4096},
                      InteriorCase{kMiB, 1}, InteriorCase{kMiB, 16}, InteriorCase{kMiB, 4096},
                      InteriorCase{kMiB, kMiB / 2}),
    [](const ::testing::TestParamInfo<InteriorCase>& param_info) {
      return "size" + std::to_string(param_info.param.size) + "_plus" +
             std::to_string(param_info.param.offset);
    });

// Child body for foreign addresses: abort, or ignore and keep the allocator and the foreign
// memory working.
[[noreturn]] void FreeForeignAndCheck(unsigned char* foreign, size_t foreign_len) {
  FillPattern(foreign, foreign_len, 4242);
  free(foreign);
  if (!CheckPattern(foreign, foreign_len, 4242)) {
    fprintf(stderr, "FOREIGN_DAMAGED: memory at %p changed by free\n", static_cast<void*>(foreign));
    _exit(3);
  }
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) {
    void* q = malloc(64 + size_t(i));
    if (!q) _exit(6);
    unsigned char* b = static_cast<unsigned char*>(q);
    if (b < foreign + foreign_len && foreign < b + 64 + i) {
      fprintf(stderr, "FOREIGN_HANDED_OUT: malloc returned %p\n", q);
      _exit(4);
    }
    blocks.push_back(q);
  }
  for (void* q : blocks) free(q);
  fprintf(stderr, "IGNORED_INTACT\n");
  _exit(0);
}

TEST(MisuseForeign, C14_FreeOfStackAddressAbortsOrIsIgnored) {
  GTEST_FLAG_SET(death_test_style, "fast");
  alignas(64) unsigned char local[128];
  unsigned char* addr = OpaquePtr(local);
  EXPECT_EXIT(FreeForeignAndCheck(addr, sizeof local), AbortsUnderLibmesh, InvalidFreeRegex(addr));
  Sink(local);
}

TEST(MisuseForeign, C14_FreeOfGlobalAddressAbortsOrIsIgnored) {
  GTEST_FLAG_SET(death_test_style, "fast");
  unsigned char* addr = OpaquePtr(g_global_buffer + 64);
  EXPECT_EXIT(FreeForeignAndCheck(addr, 64), AbortsUnderLibmesh, InvalidFreeRegex(addr));
}

TEST(MisuseForeign, C14_FreeOfForeignMmapAbortsOrIsIgnored) {
  GTEST_FLAG_SET(death_test_style, "fast");
  const size_t len = 4 * 4096;
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  unsigned char* addr = static_cast<unsigned char*>(m);
  EXPECT_EXIT(FreeForeignAndCheck(addr, len), AbortsUnderLibmesh, InvalidFreeRegex(addr));
  munmap(m, len);
}

// ---- C15: use of a freed pointer ---------------------------------------------------------

[[noreturn]] void UsableSizeOfFreedAndCheck(size_t n) {
  char* p = static_cast<char*>(malloc(n));
  if (!p) _exit(6);
  char* freed = OpaquePtr(p);
  free(p);
  size_t u = malloc_usable_size(freed);
  // The heap must still be sound: fresh blocks are distinct and keep their contents.
  std::vector<char*> blocks;
  for (int i = 0; i < 2000; ++i) {
    char* q = static_cast<char*>(malloc(n));
    if (!q) _exit(6);
    FillPattern(q, n, uint64_t(i));
    blocks.push_back(q);
  }
  for (int i = 0; i < 2000; ++i) {
    if (!CheckPattern(blocks[size_t(i)], n, uint64_t(i))) {
      fprintf(stderr, "CORRUPTION: block %d overwritten (duplicate hand-out?)\n", i);
      _exit(3);
    }
  }
  for (char* q : blocks) free(q);
  fprintf(stderr, "DEFINED_ANSWER usable=%zu\n", u);
  _exit(0);
}

TEST(MisuseFreed, C15_UsableSizeOfFreedPointerIsHarmless) {
  GTEST_FLAG_SET(death_test_style, "fast");
  for (size_t n : {size_t(32), size_t(1000), kMiB}) {
    EXPECT_EXIT(UsableSizeOfFreedAndCheck(n), AbortsUnderLibmesh,
                HaveLibmesh() ? "mesh: malloc_usable_size of freed pointer 0x[0-9a-f]+" : "")
        << "size " << n;
  }
}

// malloc_usable_size answers a live small block without taking the slow path (servers ask for
// the size of every block they allocate and free). Whatever else it is given must still reach
// the checks: a pointer into a live block, and a block freed by a thread that did not allocate
// it.
[[noreturn]] void UsableSizeAndExit(void* p) {
  size_t u = malloc_usable_size(p);
  fprintf(stderr, "DEFINED_ANSWER usable=%zu\n", u);
  _exit(0);
}

TEST(MisuseFreed, C15_UsableSizeOfAPointerIntoALiveBlockAborts) {
  GTEST_FLAG_SET(death_test_style, "fast");
  for (size_t n : {size_t(32), size_t(48), size_t(1000), kMiB}) {
    char* p = static_cast<char*>(malloc(n));
    ASSERT_NE(p, nullptr);
    // Its own size first, as the fast path answers it (no abort, no slow path needed).
    ASSERT_GE(malloc_usable_size(p), n);
    char* inside = OpaquePtr(p + 16);
    EXPECT_EXIT(UsableSizeAndExit(inside), AbortsUnderLibmesh,
                HaveLibmesh() ? "mesh: malloc_usable_size of a pointer into a block " + AddrRegex(inside)
                              : "")
        << "size " << n;
    free(p);
  }
}

[[noreturn]] void UsableSizeOfBlockFreedElsewhere(size_t n) {
  char* p = static_cast<char*>(malloc(n));
  if (!p) _exit(6);
  std::thread([p] { free(p); }).join();  // its stack goes back to the span at thread exit
  UsableSizeAndExit(OpaquePtr(p));
}

TEST(MisuseFreed, C15_UsableSizeOfABlockAnotherThreadFreedAborts) {
  GTEST_FLAG_SET(death_test_style, "fast");
  for (size_t n : {size_t(16), size_t(64), size_t(1000)}) {
    EXPECT_EXIT(UsableSizeOfBlockFreedElsewhere(n), AbortsUnderLibmesh,
                HaveLibmesh() ? "mesh: malloc_usable_size of freed pointer 0x[0-9a-f]+" : "")
        << "size " << n;
  }
}

[[noreturn]] void ReallocOfFreedAndCheck(size_t n) {
  char* p = static_cast<char*>(malloc(n));
  if (!p) _exit(6);
  char* freed = OpaquePtr(p);
  free(p);
  char* r = static_cast<char*>(realloc(freed, n / 2 + 1));
  if (r) FillPattern(r, n / 2 + 1, 777);
  std::vector<char*> blocks;
  for (int i = 0; i < 2000; ++i) {
    char* q = static_cast<char*>(malloc(n));
    if (!q) _exit(6);
    if (r && q < r + n / 2 + 1 && r < q + n) {
      fprintf(stderr, "CORRUPTION: realloc of a freed pointer returned %p, handed out again\n",
              static_cast<void*>(r));
      _exit(4);
    }
    FillPattern(q, n, uint64_t(i));
    blocks.push_back(q);
  }
  if (r && !CheckPattern(r, n / 2 + 1, 777)) _exit(5);
  for (int i = 0; i < 2000; ++i)
    if (!CheckPattern(blocks[size_t(i)], n, uint64_t(i))) _exit(3);
  fprintf(stderr, "DEFINED_ANSWER\n");
  _exit(0);
}

TEST(MisuseFreed, C15_ReallocOfFreedPointerNeverCorrupts) {
  MESH_REQUIRE_LIBMESH();  // glibc hands the block out twice here
  GTEST_FLAG_SET(death_test_style, "fast");
  for (size_t n : {size_t(32), size_t(1000), kMiB}) {
    EXPECT_EXIT(ReallocOfFreedAndCheck(n), AbortsUnderLibmesh, "mesh: realloc of freed pointer 0x[0-9a-f]+")
        << "size " << n;
  }
}

}  // namespace
}  // namespace mesh_api_test
