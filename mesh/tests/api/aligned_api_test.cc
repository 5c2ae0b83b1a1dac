// docs/behaviour.md section A, items A6-A7: posix_memalign, aligned_alloc, memalign, valloc and
// pvalloc (the rest of section A is in malloc_api_test.cc).
#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

// ---- A6 ----------------------------------------------------------------------------------

TEST(MallocApi, A6_PosixMemalignBadAlignmentIsEinvalAndUntouched) {
  void* const sentinel = reinterpret_cast<void*>(uintptr_t(0x5a5a5a50));
  for (size_t a : {size_t(0), size_t(1), size_t(2), size_t(3), size_t(4), size_t(12), size_t(24),
                   size_t(48), size_t(96), size_t(4097), size_t(65535), SIZE_MAX, SIZE_MAX / 2}) {
    void* p = sentinel;
    int rc = posix_memalign(&p, Opaque(a), 64);
    EXPECT_EQ(rc, EINVAL) << "posix_memalign alignment " << a;
    EXPECT_EQ(p, sentinel) << "posix_memalign alignment " << a << " wrote *memptr";
    if (rc == 0 && p != sentinel) free(p);
  }
}

TEST(MallocApi, A6_PosixMemalignImpossibleSizeIsEnomem) {
  for (size_t a : {size_t(16), size_t(64), size_t(4096), kMiB}) {
    for (size_t n : ImpossibleSizes()) {
      void* p = nullptr;
      int rc = posix_memalign(&p, a, Opaque(n));
      EXPECT_EQ(rc, ENOMEM) << "posix_memalign(" << a << ", " << n << ")";
      if (rc == 0) free(p);
    }
  }
}

TEST(MallocApi, A6_PosixMemalignEveryPowerOfTwo) {
  for (size_t a = 8; a <= 8 * kMiB; a *= 2) {
    std::vector<size_t> sizes = {1, 100, a / 2 + 1, a, a + 1, 3 * a + 5};
    std::vector<std::pair<void*, size_t>> live;
    for (size_t n : sizes) {
      void* p = nullptr;
      int rc = posix_memalign(&p, Opaque(a), n);
      ASSERT_EQ(rc, 0) << "posix_memalign(" << a << ", " << n << ")";
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(IsAligned(p, a)) << "posix_memalign(" << a << ", " << n << ") = " << p;
      size_t usable = malloc_usable_size(p);
      ASSERT_GE(usable, n) << "posix_memalign(" << a << ", " << n << ")";
      FillPattern(p, usable, a ^ n);
      live.emplace_back(p, usable);
    }
    for (size_t i = 0; i < live.size(); ++i) {
      EXPECT_TRUE(CheckPattern(live[i].first, live[i].second, a ^ sizes[i]))
          << "alignment " << a << " size " << sizes[i] << " overwritten";
      free(live[i].first);
    }
  }
}

TEST(MallocApi, A6_SmallAlignedRequestsUseSizeClasses) {
  struct Case {
    size_t align, n;
  } cases[] = {{64, 100}, {32, 48}, {128, 200}, {256, 1000}, {512, 300}, {1024, 1000}, {2048, 2000}};
  for (const Case& c : cases) {
    void* p = nullptr;
    ASSERT_EQ(posix_memalign(&p, c.align, Opaque(c.n)), 0);
    ASSERT_TRUE(IsAligned(p, c.align));
    size_t usable = malloc_usable_size(p);
    EXPECT_GE(usable, c.n);
    EXPECT_LT(usable, 4096u) << "posix_memalign(" << c.align << ", " << c.n
                             << ") was served with a whole page or more";
    if (HaveLibmesh()) {
      EXPECT_EQ(usable % c.align, 0u) << "posix_memalign(" << c.align << ", " << c.n
                                      << "): size class " << usable << " is not a multiple of the alignment";
    }
    free(p);
  }
  // Many small aligned blocks must not cost a page each.
  std::vector<void*> ptrs;
  size_t rss0 = CurrentRssBytes();
  for (int i = 0; i < 2000; ++i) {
    void* p = nullptr;
    ASSERT_EQ(posix_memalign(&p, 64, Opaque(100)), 0);
    memset(p, 1, 100);
    ptrs.push_back(p);
  }
  size_t rss1 = CurrentRssBytes();
  EXPECT_LT(rss1, rss0 + 2 * kMiB) << "2000 x posix_memalign(64, 100) grew RSS by "
                                   << (rss1 - rss0) / kKiB << " KiB";
  for (void* p : ptrs) free(p);
}

// ---- A7 ----------------------------------------------------------------------------------

TEST(MallocApi, A7_AlignedAllocBadAlignmentNeverCrashes) {
  for (size_t a : {size_t(0), size_t(3), size_t(24), size_t(4097)}) {
    errno = 0;
    void* p = aligned_alloc(Opaque(a), 64);
    if (p == nullptr) {
      EXPECT_EQ(errno, EINVAL) << "aligned_alloc(" << a << ", 64)";
    } else {
      // glibc before 2.38 accepts these (rounding up); the contract asks NULL/EINVAL.
      if (HaveLibmesh()) ADD_FAILURE() << "aligned_alloc(" << a << ", 64) must fail with EINVAL";
      free(p);
    }
  }
}

TEST(MallocApi, A7_AlignedAllocValid) {
  for (size_t a = 8; a <= 4 * kMiB; a *= 2) {
    for (size_t n : {a, 3 * a, a + 8, size_t(1)}) {
      void* p = aligned_alloc(Opaque(a), n);
      ASSERT_NE(p, nullptr) << "aligned_alloc(" << a << ", " << n << ")";
      EXPECT_TRUE(IsAligned(p, a));
      EXPECT_GE(malloc_usable_size(p), n);
      memset(p, 0x77, n);
      free(p);
    }
  }
}

TEST(MallocApi, A7_MemallocValid) {
  for (size_t a = 8; a <= 4 * kMiB; a *= 2) {
    for (size_t n : {size_t(1), size_t(100), a, a + 1}) {
      void* p = memalign(Opaque(a), n);
      ASSERT_NE(p, nullptr) << "memalign(" << a << ", " << n << ")";
      EXPECT_TRUE(IsAligned(p, a)) << "memalign(" << a << ", " << n << ") = " << p;
      EXPECT_GE(malloc_usable_size(p), n);
      memset(p, 0x66, n);
      free(p);
    }
  }
  // Alignments below the malloc alignment behave like malloc (as in glibc).
  for (size_t a : {size_t(0), size_t(1), size_t(2), size_t(8)}) {
    void* p = memalign(Opaque(a), 100);
    ASSERT_NE(p, nullptr) << "memalign(" << a << ", 100)";
    EXPECT_TRUE(IsAligned(p, 16));
    free(p);
  }
  // A non-power-of-two alignment: glibc rounds it up; EINVAL is also acceptable.
  errno = 0;
  void* p = memalign(Opaque(24), 100);
  if (p) {
    EXPECT_TRUE(IsAligned(p, 32)) << "memalign(24, 100) = " << p;
    free(p);
  } else {
    EXPECT_EQ(errno, EINVAL);
  }
}

TEST(MallocApi, A7_VallocAndPvalloc) {
  for (size_t n : {size_t(1), size_t(100), kPage - 1, kPage, kPage + 1, kMiB + 1}) {
    void* p = valloc(Opaque(n));
    ASSERT_NE(p, nullptr) << "valloc(" << n << ")";
    EXPECT_TRUE(IsAligned(p, kPage)) << "valloc(" << n << ") = " << p;
    EXPECT_GE(malloc_usable_size(p), n);
    memset(p, 0x55, n);
    free(p);
  }
  struct Case {
    size_t n, min_usable;
  } cases[] = {{0, 0}, {1, kPage}, {kPage, kPage}, {kPage + 1, 2 * kPage}, {kMiB + 1, kMiB + kPage}};
  for (const Case& c : cases) {
    void* p = pvalloc(Opaque(c.n));
    ASSERT_NE(p, nullptr) << "pvalloc(" << c.n << ")";
    EXPECT_TRUE(IsAligned(p, kPage)) << "pvalloc(" << c.n << ") = " << p;
    size_t usable = malloc_usable_size(p);
    EXPECT_GE(usable, c.min_usable) << "pvalloc(" << c.n << ") must round up to a whole page";
    memset(p, 0x44, std::max(c.min_usable, c.n));  // the whole rounded size is ours
    free(p);
  }
}

TEST(MallocApi, A7_HugeAlignedRequestsGiveEnomem) {
  for (size_t n : ImpossibleSizes()) {
    errno = 0;
    void* p = aligned_alloc(64, Opaque(n) & ~size_t(63));
    EXPECT_EQ(p, nullptr) << "aligned_alloc(64, " << n << ")";
    EXPECT_EQ(errno, ENOMEM) << "aligned_alloc(64, " << n << ")";
    free(p);
    errno = 0;
    p = memalign(4096, Opaque(n));
    EXPECT_EQ(p, nullptr) << "memalign(4096, " << n << ")";
    EXPECT_EQ(errno, ENOMEM) << "memalign(4096, " << n << ")";
    free(p);
    errno = 0;
    p = valloc(Opaque(n));
    EXPECT_EQ(p, nullptr) << "valloc(" << n << ")";
    EXPECT_EQ(errno, ENOMEM) << "valloc(" << n << ")";
    free(p);
    errno = 0;
    p = pvalloc(Opaque(n));
    EXPECT_EQ(p, nullptr) << "pvalloc(" << n << ") (overflow when rounding up to a page?)";
    EXPECT_EQ(errno, ENOMEM) << "pvalloc(" << n << ")";
    free(p);
  }
  // An alignment no arena can give.
  errno = 0;
  void* p = memalign(Opaque(size_t(1) << 46), 16);
  EXPECT_EQ(p, nullptr) << "memalign(2^46, 16)";
  EXPECT_TRUE(errno == ENOMEM || errno == EINVAL) << "errno " << errno;
  free(p);
}

}  // namespace
}  // namespace mesh_api_test
