// G28 (meshed pages share a physical frame) on the process allocator, checked page by page.
//
// This executable links libmesh's static library (libmesh.a) instead of libmesh.so, so that the
// test can read the allocator's own page map: for every page of a live object it finds the
// span that holds the page, and for a page of a meshed (virtual) span the page at the same
// offset of the span whose memory it now uses, its partner. The kernel's page table
// (/proc/self/pagemap, frame numbers for root only) must then show both on the same frame,
// pages of different physical spans on different frames, and no page without a frame.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "api_test_util.h"
#include "entry/runtime.h"
#include "mesh/mesh.h"
#include "miniheap/page_entry.h"

namespace {

using mesh_api_test::Fragmented;

constexpr uintptr_t kPageBytes = 4096;

// The physical frame behind the virtual page holding p: 0 when the page is not present (or the
// reader may not see frame numbers).
uint64_t FrameOf(int pagemap, uintptr_t p) {
  uint64_t e = 0;
  if (pread(pagemap, &e, sizeof e, static_cast<off_t>(p / kPageBytes * sizeof e)) != sizeof e) return 0;
  if ((e >> 63) == 0) return 0;
  return e & ((uint64_t{1} << 55) - 1);
}

// Why frame numbers cannot be read, or "".
std::string FramesUnavailable(int pagemap) {
  if (pagemap < 0) return "cannot open /proc/self/pagemap";
  static char probe[kPageBytes] __attribute__((aligned(kPageBytes)));
  probe[0] = 1;
  if (FrameOf(pagemap, reinterpret_cast<uintptr_t>(probe)) == 0) return "pagemap shows no frame numbers (not root?)";
  mesh_stats s{};
  mesh_get_stats(&s);
  if (s.memfd_backed != 1) return "the arena has no memfd: nothing meshes";
  return "";
}

// Reads and writes back every byte of the object, so each of its pages is mapped (written, so
// an anonymous page is no shared zero page) and its frame shows in the pagemap.
void Touch(unsigned char* p, size_t n) {
  volatile unsigned char* v = p;
  for (size_t i = 0; i < n; ++i) v[i] = v[i];
}

TEST(Meshing, G28_MeshedPagesShareAPhysicalFrame) {
  int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  std::string why = FramesUnavailable(pagemap);
  if (!why.empty()) {
    if (pagemap >= 0) close(pagemap);
    GTEST_SKIP() << why;
  }
  mesh::GlobalHeap& heap = mesh::runtime().heap;
  Fragmented f(100000, 2);
  ASSERT_NE(heap.entryFor(f.live[0]), 0u) << "malloc did not reach the statically linked libmesh";
  ASSERT_GT(mesh_compact(), 0u);
  for (unsigned char* p : f.live) Touch(p, f.size);
  ASSERT_TRUE(f.intact());

  // Every page of a live object: its span (physical: the miniheap) and the page's index in it.
  std::set<uintptr_t> pages;
  for (unsigned char* p : f.live) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (uintptr_t pg = a / kPageBytes; pg <= (a + f.size - 1) / kPageBytes; ++pg) pages.insert(pg * kPageBytes);
  }
  std::map<uint64_t, std::pair<mesh::MiniHeap*, size_t>> owners;  // frame -> (span, page in span)
  size_t meshedPages = 0;
  for (uintptr_t pg : pages) {
    const void* page = reinterpret_cast<const void*>(pg);
    uintptr_t e = heap.entryFor(page);
    mesh::MiniHeap* mh = mesh::entryMiniHeap(e);
    ASSERT_NE(mh, nullptr) << "a live object's page has no span: " << page;
    size_t inSpan = mesh::entryPageInSpan(e);
    uint64_t frame = FrameOf(pagemap, pg);
    ASSERT_NE(frame, 0u) << "touched page " << page << " has no frame";
    char* virtualStart = heap.spanStartFor(page, e);
    if (virtualStart != mh->spanStart()) {
      // A meshed page: its partner is the page at the same offset of the span it was meshed into.
      ++meshedPages;
      const char* partner = mh->spanStart() + (pg - reinterpret_cast<uintptr_t>(virtualStart));
      (void)*static_cast<const volatile char*>(partner);  // maps it here, if nothing did yet
      EXPECT_EQ(FrameOf(pagemap, reinterpret_cast<uintptr_t>(partner)), frame)
          << "meshed page " << page << " and its partner " << static_cast<const void*>(partner)
          << " sit on different frames";
    }
    auto [it, fresh] = owners.emplace(frame, std::make_pair(mh, inSpan));
    EXPECT_TRUE(fresh || it->second == std::make_pair(mh, inSpan))
        << "frame " << frame << " holds pages of two different spans";
  }
  // Every page of every meshed span of those miniheaps, with or without a live object on it.
  std::set<mesh::MiniHeap*> spans;
  for (auto& kv : owners) spans.insert(kv.second.first);
  size_t aliasPages = 0;
  for (mesh::MiniHeap* mh : spans) {
    for (uint32_t i = 0; i < mh->extraSpanCount(); ++i) {
      const char* alias = heap.arena().pageAddress(mh->extraSpan(i));
      for (size_t k = 0; k < mh->pages(); ++k, ++aliasPages) {
        const char* a = alias + k * kPageBytes;
        const char* partner = mh->spanStart() + k * kPageBytes;
        (void)*static_cast<const volatile char*>(a);
        (void)*static_cast<const volatile char*>(partner);
        uint64_t frame = FrameOf(pagemap, reinterpret_cast<uintptr_t>(partner));
        ASSERT_NE(frame, 0u) << "page " << static_cast<const void*>(partner) << " has no frame";
        EXPECT_EQ(FrameOf(pagemap, reinterpret_cast<uintptr_t>(a)), frame)
            << "page " << k << " of meshed span " << static_cast<const void*>(alias)
            << " is not on the frame of its partner " << static_cast<const void*>(partner);
      }
    }
  }
  close(pagemap);
  std::printf("%zu pages of live objects (%zu of them meshed) on %zu frames; %zu pages of meshed spans checked\n",
              pages.size(), meshedPages, owners.size(), aliasPages);
  EXPECT_GT(meshedPages, 0u) << "no live object sits on a meshed page";
  EXPECT_GE(aliasPages, meshedPages);
  EXPECT_LT(owners.size(), pages.size()) << "meshed pages must share frames";
}

}  // namespace
