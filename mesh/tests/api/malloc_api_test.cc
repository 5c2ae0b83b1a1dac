// docs/behaviour.md section A: the C allocation API contract (A1-A5, A8-A10; the aligned
// allocation functions A6-A7 are in aligned_api_test.cc).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

// ---- A1 ----------------------------------------------------------------------------------

TEST(MallocApi, A1_MallocZeroIsUniqueAndFreeable) {
  std::set<void*> seen;
  std::vector<void*> ptrs;
  for (int i = 0; i < 200; ++i) {
    void* p = malloc(Opaque(0));
    ASSERT_NE(p, nullptr) << "malloc(0) returned NULL at call " << i;
    EXPECT_TRUE(seen.insert(p).second) << "malloc(0) returned " << p << " twice while live";
    ptrs.push_back(p);
  }
  for (void* p : ptrs) free(p);
}

// ---- A2 ----------------------------------------------------------------------------------

// Allocates `count` live blocks of n bytes, checks alignment and usable size, fills each
// block's entire usable size with its own byte and then checks no block was disturbed.
void CheckBlocksOfSize(size_t n, int count) {
  constexpr int kMax = 4;
  ASSERT_LE(count, kMax);
  void* p[kMax];
  size_t usable[kMax];
  for (int k = 0; k < count; ++k) {
    p[k] = malloc(Opaque(n));
    ASSERT_NE(p[k], nullptr) << "malloc(" << n << ")";
    ASSERT_TRUE(IsAligned(p[k], 8)) << "malloc(" << n << ") = " << p[k];
    if (n >= 16) {
      ASSERT_TRUE(IsAligned(p[k], 16)) << "malloc(" << n << ") = " << p[k] << " not 16-aligned";
    }
    usable[k] = malloc_usable_size(p[k]);
    ASSERT_GE(usable[k], n) << "malloc_usable_size too small for malloc(" << n << ")";
  }
  for (int k = 0; k < count; ++k) {
    memset(p[k], (0x11 * (k + 1)) ^ int(n & 0xff), usable[k]);
  }
  for (int k = 0; k < count; ++k) {
    unsigned char c = static_cast<unsigned char>((0x11 * (k + 1)) ^ int(n & 0xff));
    ASSERT_TRUE(AllBytesAre(p[k], usable[k], c))
        << "block " << k << " of size " << n << " (usable " << usable[k] << ") at " << p[k]
        << " was overwritten by a neighbour";
  }
  for (int k = 0; k < count; ++k) free(p[k]);
}

TEST(MallocApi, A2_SmallSizesAlignedUsableAndWritable) {
  // A long-lived canary between the tested blocks: must survive all the writes.
  void* canary = malloc(Opaque(64));
  ASSERT_NE(canary, nullptr);
  FillPattern(canary, 64, 7);
  for (size_t n = 1; n <= 20000; ++n) {
    CheckBlocksOfSize(n, 4);
    if (HasFatalFailure()) return;
  }
  EXPECT_TRUE(CheckPattern(canary, 64, 7));
  free(canary);
}

TEST(MallocApi, A2_LargeSizesAlignedUsableAndWritable) {
  std::vector<size_t> sizes;
  for (size_t s = 32 * kKiB; s <= 64 * kMiB; s *= 2) {
    sizes.push_back(s - 1);
    sizes.push_back(s);
    sizes.push_back(s + 1);
    sizes.push_back(s + s / 2 + 7);
  }
  sizes.push_back(kPage * 17 + 3);
  sizes.push_back(2 * kMiB - kPage);
  for (size_t n : sizes) {
    if (n > 64 * kMiB) continue;
    CheckBlocksOfSize(n, 2);
    if (HasFatalFailure()) return;
  }
}

// ---- A3 ----------------------------------------------------------------------------------

TEST(MallocApi, A3_ImpossibleSizesGiveEnomem) {
  for (size_t n : ImpossibleSizes()) {
    errno = 0;
    void* p = malloc(Opaque(n));
    EXPECT_EQ(p, nullptr) << "malloc(" << n << ") succeeded";
    EXPECT_EQ(errno, ENOMEM) << "malloc(" << n << ")";
    if (p) free(p);
  }
  // The allocator still works afterwards.
  void* p = malloc(Opaque(100));
  ASSERT_NE(p, nullptr);
  free(p);
}

TEST(MallocApi, A3_MoreThanTheArenaGivesEnomem) {
  MESH_REQUIRE_LIBMESH();
  mesh_stats s = Stats();
  long arena_gb = 0;
  ASSERT_EQ(Mesh()->get_option("arena_gb", &arena_gb), 0);
  size_t arena = std::max<size_t>(s.arena_reserved, size_t(arena_gb) * kGiB);
  errno = 0;
  void* p = malloc(Opaque(arena + kGiB));
  EXPECT_EQ(p, nullptr) << "malloc larger than the arena (" << arena << " bytes) succeeded";
  EXPECT_EQ(errno, ENOMEM);
  free(p);
}

// ---- A4 ----------------------------------------------------------------------------------

TEST(MallocApi, A4_CallocZeroesRecycledBlocks) {
  const size_t sizes[] = {1, 8, 16, 24, 48, 100, 1000, 4096, 8000, 20000, 100000, kMiB, 5 * kMiB + 3};
  for (size_t n : sizes) {
    for (int round = 0; round < 4; ++round) {
      // Dirty a batch of blocks of this size and free them.
      std::vector<void*> dirty;
      for (int i = 0; i < 16; ++i) {
        void* p = malloc(Opaque(n));
        ASSERT_NE(p, nullptr);
        memset(p, 0xA5, malloc_usable_size(p));
        dirty.push_back(p);
      }
      for (void* p : dirty) free(p);
      // calloc the same size several times: every byte asked for must be zero.
      std::vector<void*> clean;
      for (int i = 0; i < 16; ++i) {
        void* q = (i % 3 == 0)   ? calloc(Opaque(1), n)
                  : (i % 3 == 1) ? calloc(n, Opaque(1))
                                 : calloc(Opaque(n), 1);
        ASSERT_NE(q, nullptr) << "calloc of " << n;
        ASSERT_TRUE(AllBytesAre(q, n, 0)) << "calloc(" << n << ") returned dirty memory at " << q
                                          << " (round " << round << ", call " << i << ")";
        memset(q, 0x5A, n);  // dirty again for the next round
        clean.push_back(q);
      }
      for (void* q : clean) free(q);
    }
  }
}

TEST(MallocApi, A4_CallocOverflowGivesEnomem) {
  struct Case {
    size_t n, size;
  } cases[] = {
      {SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {size_t(1) << 32, size_t(1) << 32},
      {SIZE_MAX, SIZE_MAX}, {1, SIZE_MAX},      {SIZE_MAX, 1},
      {SIZE_MAX / 16 + 1, 16}, {kMiB, kMiB} /* 1 TiB, no overflow but impossible */,
      {3, SIZE_MAX / 3 + 1},
  };
  for (const Case& c : cases) {
    errno = 0;
    void* p = calloc(Opaque(c.n), Opaque(c.size));
    EXPECT_EQ(p, nullptr) << "calloc(" << c.n << ", " << c.size << ") succeeded";
    EXPECT_EQ(errno, ENOMEM) << "calloc(" << c.n << ", " << c.size << ")";
    free(p);
  }
}

TEST(MallocApi, A4_CallocZeroElementsIsValid) {
  std::set<void*> seen;
  std::vector<void*> ptrs;
  for (int i = 0; i < 50; ++i) {
    void* a = calloc(Opaque(0), 16);
    void* b = calloc(16, Opaque(0));
    void* c = calloc(Opaque(0), Opaque(0));
    for (void* p : {a, b, c}) {
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(seen.insert(p).second) << "calloc with zero returned a live pointer twice";
      ptrs.push_back(p);
    }
  }
  for (void* p : ptrs) free(p);
}

TEST(MallocApi, A4_LargeCallocDoesNotTouchFreshPages) {
  const size_t n = 256 * kMiB;
  size_t rss_before = CurrentRssBytes();
  char* p = static_cast<char*>(calloc(Opaque(n), 1));
  ASSERT_NE(p, nullptr);
  size_t rss_after = CurrentRssBytes();
  EXPECT_LT(rss_after, rss_before + 64 * kMiB)
      << "calloc(256 MiB) made " << (rss_after - rss_before) / kMiB
      << " MiB resident: fresh OS pages are zero and must not be written";
  for (size_t i = 0; i < n; i += 64 * kKiB) ASSERT_EQ(p[i], 0) << "offset " << i;
  ASSERT_EQ(p[n - 1], 0);
  free(p);
}

// ---- A5 ----------------------------------------------------------------------------------

TEST(MallocApi, A5_ReallocNullIsMalloc) {
  for (size_t n : {size_t(0), size_t(1), size_t(16), size_t(1000), size_t(70000), 3 * kMiB}) {
    char* p = static_cast<char*>(realloc(nullptr, Opaque(n)));
    ASSERT_NE(p, nullptr) << "realloc(NULL, " << n << ")";
    ASSERT_GE(malloc_usable_size(p), n);
    memset(p, 0x3c, n);
    free(p);
  }
}

TEST(MallocApi, A5_ReallocToZeroFreesAndReturnsNull) {
  for (size_t n : {size_t(100), 4 * kMiB}) {
    void* p = malloc(Opaque(n));
    ASSERT_NE(p, nullptr);
    memset(p, 1, n);
    mesh_stats s0 = Stats();
    struct mallinfo2 m0 = mallinfo2();
    void* q = realloc(p, Opaque(0));
    EXPECT_EQ(q, nullptr) << "realloc(p, 0) must free p and return NULL";
    if (q) {
      free(q);
      continue;
    }
    if (HaveLibmesh()) {
      mesh_stats s1 = Stats();
      EXPECT_EQ(s1.frees, s0.frees + 1) << "realloc(p, 0) of " << n << " bytes did not free";
      EXPECT_LE(s1.bytes_in_use + n, s0.bytes_in_use) << "bytes_in_use did not drop";
    } else if (n >= kMiB) {
      struct mallinfo2 m1 = mallinfo2();
      EXPECT_LE(m1.uordblks + m1.hblkhd + n, m0.uordblks + m0.hblkhd) << "block not freed";
    }
  }
}

// Byte i of a "prefix-checked" block: depends on the position only.
inline unsigned char PrefixByte(size_t i) { return static_cast<unsigned char>((i * 131) ^ (i >> 9)); }

void FillPrefix(char* p, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) p[i] = static_cast<char>(PrefixByte(i));
}

size_t FirstPrefixMismatch(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (static_cast<unsigned char>(p[i]) != PrefixByte(i)) return i;
  return SIZE_MAX;
}

TEST(MallocApi, A5_ReallocKeepsPrefixAcrossSmallAndLarge) {
  std::vector<size_t> steps = {1,      8,      15,      16,       17,      100,     1024,
                               4095,   4096,   16384,   16385,    32768,   65536,   262144 + 5,
                               kMiB,   4 * kMiB + 3, 64 * kMiB, 3 * kMiB, 70000, 20000,  4096,
                               100,    16,     1,       2 * kMiB, 24,      kMiB - 1, 33};
  char* p = nullptr;
  size_t old = 0;
  for (size_t n : steps) {
    char* q = static_cast<char*>(realloc(p, Opaque(n)));
    ASSERT_NE(q, nullptr) << "realloc to " << n;
    ASSERT_GE(malloc_usable_size(q), n);
    size_t keep = std::min(old, n);
    size_t bad = FirstPrefixMismatch(q, keep);
    ASSERT_EQ(bad, SIZE_MAX) << "realloc " << old << " -> " << n << " lost byte " << bad;
    FillPrefix(q, keep, n);
    p = q;
    old = n;
  }
  free(p);

  // Random walk over sizes with several live blocks.
  std::mt19937_64 rng(12345);
  std::vector<std::pair<char*, size_t>> blocks(8, {nullptr, 0});
  for (int step = 0; step < 3000; ++step) {
    auto& [b, size] = blocks[rng() % blocks.size()];
    size_t n = size_t(1) << (rng() % 21);
    n += rng() % n;
    char* q = static_cast<char*>(realloc(b, Opaque(n)));
    ASSERT_NE(q, nullptr);
    size_t keep = std::min(size, n);
    ASSERT_EQ(FirstPrefixMismatch(q, keep), SIZE_MAX) << "step " << step << ": " << size << " -> " << n;
    FillPrefix(q, keep, n);
    b = q;
    size = n;
  }
  for (auto& [b, size] : blocks) {
    EXPECT_EQ(FirstPrefixMismatch(b, size), SIZE_MAX);
    free(b);
  }
}

TEST(MallocApi, A5_FailedReallocLeavesBlockIntact) {
  for (size_t n : {size_t(100), size_t(5000), kMiB + 17}) {
    char* p = static_cast<char*>(malloc(Opaque(n)));
    ASSERT_NE(p, nullptr);
    FillPattern(p, n, n);
    for (size_t bad : ImpossibleSizes()) {
      errno = 0;
      void* q = realloc(p, Opaque(bad));
      EXPECT_EQ(q, nullptr) << "realloc(p, " << bad << ") succeeded";
      EXPECT_EQ(errno, ENOMEM) << "realloc(p, " << bad << ")";
      if (q) {
        p = static_cast<char*>(q);
        continue;
      }
      ASSERT_TRUE(CheckPattern(p, n, n)) << "failed realloc to " << bad << " damaged the block";
    }
    // Still a live, usable block.
    ASSERT_GE(malloc_usable_size(p), n);
    char* q = static_cast<char*>(realloc(p, Opaque(2 * n)));
    ASSERT_NE(q, nullptr);
    EXPECT_TRUE(CheckPattern(q, n, n));
    free(q);
  }
}

TEST(MallocApi, A5_ReallocarrayOverflowKeepsBlock) {
  char* p = static_cast<char*>(malloc(Opaque(64)));
  ASSERT_NE(p, nullptr);
  FillPattern(p, 64, 99);
  struct Case {
    size_t n, size;
  } cases[] = {{SIZE_MAX / 2 + 1, 4}, {size_t(1) << 33, size_t(1) << 33}, {SIZE_MAX, SIZE_MAX},
               {kMiB, kMiB}};
  for (const Case& c : cases) {
    errno = 0;
    void* q = reallocarray(p, Opaque(c.n), Opaque(c.size));
    EXPECT_EQ(q, nullptr) << "reallocarray(p, " << c.n << ", " << c.size << ")";
    EXPECT_EQ(errno, ENOMEM);
    if (q) {
      p = static_cast<char*>(q);
      continue;
    }
    ASSERT_TRUE(CheckPattern(p, 64, 99)) << "failed reallocarray damaged the block";
  }
  char* q = static_cast<char*>(reallocarray(p, Opaque(100), 100));
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(CheckPattern(q, 64, 99));
  EXPECT_GE(malloc_usable_size(q), 10000u);
  free(q);
  void* r = reallocarray(nullptr, Opaque(4), 8);
  ASSERT_NE(r, nullptr);
  free(r);
}

// ---- A8 ----------------------------------------------------------------------------------

TEST(MallocApi, A8_NullIsHarmless) {
  free(nullptr);
  free(OpaquePtr<void>(nullptr));
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
  EXPECT_EQ(malloc_usable_size(OpaquePtr<void>(nullptr)), 0u);
}

// malloc_trim returns 1 when it released memory and 0 otherwise (docs/user-guide.md, section 5).
// Run in a child where, under libmesh, no other thread returns freed memory meanwhile (no
// background thread) and freed pages are not returned for their age (no decay).
TEST(MallocApi, A8_MallocTrimReleasesMemory) {
  ChildResult r = RunInChild(
      [] {
        if (const MeshApi* m = Mesh()) {
          CHILD_CHECK(m->set_option("background_thread", 0) == 0, 10);
          CHILD_CHECK(m->set_option("decay_ms", 0) == 0, 11);
        }
        // Large blocks and many small ones, all touched, then freed and trimmed.
        std::vector<void*> big, small;
        for (int i = 0; i < 48; ++i) {
          void* p = malloc(Opaque(kMiB + 512));
          CHILD_CHECK(p != nullptr, 13);
          memset(p, 1, kMiB + 512);
          big.push_back(p);
        }
        for (int i = 0; i < 40000; ++i) {
          void* p = malloc(Opaque(1000));
          CHILD_CHECK(p != nullptr, 13);
          memset(p, 2, 1000);
          small.push_back(p);
        }
        size_t peak = CurrentRssBytes();
        for (void* p : big) free(p);
        for (void* p : small) free(p);
        mesh_stats s0 = Stats();
        int rc = malloc_trim(0);
        mesh_stats s1 = Stats();
        size_t after = CurrentRssBytes();
        std::fprintf(stderr, "malloc_trim(0) = %d, kept %zu KiB, released %zu KiB, RSS %zu -> %zu MiB\n", rc,
                     size_t(s0.dirty_bytes) >> 10, size_t(s1.released_bytes - s0.released_bytes) >> 10,
                     peak / kMiB, after / kMiB);
        CHILD_CHECK(rc == 1, 2);  // ~88 MiB were freed, and libmesh kept some of it until now
        // libmesh: the freed pages it kept (up to MESH_MAX_DIRTY_MB) all go back now.
        CHILD_CHECK(!HaveLibmesh() || s0.dirty_bytes > 0, 8);
        CHILD_CHECK(!HaveLibmesh() || (s1.released_bytes - s0.released_bytes >= s0.dirty_bytes && s1.dirty_bytes == 0), 3);
        CHILD_CHECK(after + 60 * kMiB < peak, 4);
        if (HaveLibmesh()) {
          // Whatever was freed since (the RSS reader's buffer, say): 1 exactly when it released some.
          mesh_stats s2 = Stats();
          rc = malloc_trim(Opaque(kMiB));
          mesh_stats s3 = Stats();
          CHILD_CHECK(rc == (s3.released_bytes > s2.released_bytes ? 1 : 0), 5);
          // Nothing freed since: nothing to release.
          rc = malloc_trim(0);
          CHILD_CHECK(rc == 0, 6);
          CHILD_CHECK(Stats().released_bytes == s3.released_bytes, 7);
        }
        return 0;
      },
      60000);
  EXPECT_TRUE(r.Exited(0)) << r.Describe();
}

TEST(MallocApi, A8_Mallinfo2ReportsRealFigures) {
  struct mallinfo2 m0 = mallinfo2();
  std::vector<void*> ptrs;
  for (int i = 0; i < 10000; ++i) {
    void* p = malloc(Opaque(1000));
    ASSERT_NE(p, nullptr);
    memset(p, 3, 1000);
    ptrs.push_back(p);
  }
  struct mallinfo2 m1 = mallinfo2();
  EXPECT_GT(m1.arena, 0u);
  EXPECT_GE(m1.uordblks, m0.uordblks + 9500000) << "uordblks " << m0.uordblks << " -> " << m1.uordblks
                                                << " after allocating 10 MB";
  EXPECT_GE(m1.arena, m1.uordblks) << "arena smaller than the bytes in use";
  for (void* p : ptrs) free(p);
  struct mallinfo2 m2 = mallinfo2();
  EXPECT_LE(m2.uordblks + 9000000, m1.uordblks) << "uordblks " << m1.uordblks << " -> " << m2.uordblks
                                                << " after freeing 10 MB";
}

// mallopt accepts glibc's parameters (1) and, under libmesh, refuses any other (0).
TEST(MallocApi, A8_MalloptAcceptsGlibcParameters) {
  EXPECT_EQ(mallopt(M_TRIM_THRESHOLD, Opaque(256 * 1024)), 1);
  EXPECT_EQ(mallopt(M_MMAP_THRESHOLD, Opaque(256 * 1024)), 1);
  EXPECT_EQ(mallopt(M_ARENA_MAX, Opaque(8)), 1);
  if (HaveLibmesh()) {
    EXPECT_EQ(mallopt(static_cast<int>(Opaque(12345)), 1), 0);
  }
  void* p = malloc(Opaque(300 * 1024));
  ASSERT_NE(p, nullptr);
  free(p);
}

// The number after "<key> = " in the "Total (incl. mmap):" part of a malloc_stats report (glibc
// and libmesh print the same layout), or -1.
long long MallocStatsTotal(const std::string& text, const char* key) {
  size_t total = text.find("Total (incl. mmap):");
  if (total == std::string::npos) return -1;
  size_t at = text.find(key, total);
  if (at == std::string::npos) return -1;
  at = text.find('=', at);
  return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + 1);
}

TEST(MallocApi, A8_MallocStatsPrintsRealFigures) {
  std::string before = CaptureStderr([] { malloc_stats(); });
  std::vector<void*> ptrs;
  for (int i = 0; i < 1000; ++i) ptrs.push_back(malloc(Opaque(500)));
  std::string text = CaptureStderr([] { malloc_stats(); });
  for (void* p : ptrs) free(p);
  long long inUse0 = MallocStatsTotal(before, "in use bytes"), inUse1 = MallocStatsTotal(text, "in use bytes");
  long long system1 = MallocStatsTotal(text, "system bytes");
  ASSERT_GE(inUse0, 0) << before;
  ASSERT_GE(inUse1, 0) << text;
  // The 1000 live blocks of 500 bytes (512 with their rounding or chunk headers), and little else
  // allocated between the two reports.
  EXPECT_GE(inUse1 - inUse0, 500000) << before << text;
  EXPECT_LE(inUse1 - inUse0, 600000) << before << text;
  EXPECT_GE(system1, inUse1) << text;
}

TEST(MallocApi, A8_MallocInfoWritesXml) {
  std::vector<void*> ptrs;
  for (int i = 0; i < 1000; ++i) ptrs.push_back(malloc(Opaque(500)));
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(malloc_info(0, f), 0);
  fflush(f);
  rewind(f);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  fclose(f);
  for (void* p : ptrs) free(p);
  EXPECT_NE(text.find("<malloc"), std::string::npos) << text;
  EXPECT_NE(text.find("</malloc>"), std::string::npos) << text;
}

// ---- A9 ----------------------------------------------------------------------------------

TEST(MallocApi, A9_EverySymbolComesFromLibmesh) {
  MESH_REQUIRE_LIBMESH();
  const char* symbols[] = {
      "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
      "memalign", "valloc", "pvalloc", "malloc_usable_size", "malloc_trim", "mallinfo",
      "mallinfo2", "mallopt", "malloc_stats", "malloc_info",
      // operator new / delete: plain, array, nothrow, sized, align_val_t.
      "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
      "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
      "_ZnamSt11align_val_tRKSt9nothrow_t", "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm",
      "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdlPvSt11align_val_t",
      "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
      "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
      // the extension API
      "mesh_get_stats", "mesh_stats_json", "mesh_print_stats", "mesh_set_option",
      "mesh_get_option", "mesh_compact", "mesh_release_free_memory"};
  for (const char* name : symbols) {
    void* addr = dlsym(RTLD_DEFAULT, name);
    if (!addr) {
      ADD_FAILURE() << name << " is not resolvable";
      continue;
    }
    Dl_info info{};
    ASSERT_NE(dladdr(addr, &info), 0) << name;
    std::string object = info.dli_fname ? info.dli_fname : "";
    EXPECT_NE(object.find("libmesh"), std::string::npos)
        << name << " resolves to " << object << ", not libmesh: memory would cross allocators";
  }
}

// ---- A10 ---------------------------------------------------------------------------------

TEST(MallocApi, A10_LibcAllocatedMemoryIsFreeable) {
  mesh_stats s0 = Stats();
  int frees = 0;
  auto release = [&](void* p, size_t need, const char* what) {
    ASSERT_NE(p, nullptr) << what;
    EXPECT_GE(malloc_usable_size(p), need) << what << " memory unknown to malloc_usable_size";
    free(p);
    ++frees;
  };

  char* s = strdup("mesh api conformance");
  release(s, 21, "strdup");
  s = strndup("abcdefghijklmnopqrstuvwxyz", 10);
  ASSERT_NE(s, nullptr);
  EXPECT_STREQ(s, "abcdefghij");
  release(s, 11, "strndup");

  char* a = nullptr;
  std::string big(100000, 'q');
  int len = asprintf(&a, "%s-%d-%s", "x", 42, big.c_str());
  ASSERT_GT(len, 0);
  EXPECT_EQ(strlen(a), size_t(len));
  release(a, size_t(len) + 1, "asprintf");

  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  fprintf(f, "short line\n%s\nlast", big.c_str());
  rewind(f);
  char* line = nullptr;
  size_t cap = 0;
  ssize_t got;
  std::vector<size_t> lengths;
  while ((got = getline(&line, &cap, f)) > 0) lengths.push_back(size_t(got));
  EXPECT_EQ(lengths, (std::vector<size_t>{11, 100001, 4}));
  release(line, cap, "getline");
  rewind(f);
  line = nullptr;
  cap = 0;
  got = getdelim(&line, &cap, 'q', f);
  EXPECT_EQ(got, 12);
  release(line, cap, "getdelim");
  fclose(f);

  char* real = realpath("/usr/bin/../bin/.", nullptr);
  ASSERT_NE(real, nullptr);
  EXPECT_STREQ(real, "/usr/bin");
  release(real, 9, "realpath");

  char* cwd = getcwd(nullptr, 0);
  ASSERT_NE(cwd, nullptr);
  release(cwd, strlen(cwd) + 1, "getcwd(NULL, 0)");

  char* buf = nullptr;
  size_t size = 0;
  FILE* m = open_memstream(&buf, &size);
  ASSERT_NE(m, nullptr);
  for (int i = 0; i < 20000; ++i) fprintf(m, "%08d\n", i);
  fclose(m);
  EXPECT_EQ(size, 180000u);
  release(buf, size + 1, "open_memstream");

  if (HaveLibmesh()) {
    mesh_stats s1 = Stats();
    EXPECT_GE(s1.frees, s0.frees + uint64_t(frees)) << "libc's allocations did not reach libmesh";
  }
}

}  // namespace
}  // namespace mesh_api_test
