// docs/behaviour.md G28/G31 on the process allocator, through /proc/self/pagemap (root only): after
// a compaction that made meshes, every page of a surviving object has a physical frame, each
// meshed page sits on the frame of its partner (the other virtual page that maps the same page
// of libmesh's arena file, as /proc/self/maps shows), pages that map different file pages or
// anonymous memory never share a frame, every object keeps its contents, and the proportional
// set size of the arena falls by at least the bytes the meshes freed (never rises without one).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "harness/pss.h"
#include "mesh/mesh.h"
#include "model/alloc_model.h"
#include "property_support.h"

namespace mesh::proptest {
namespace {

constexpr uint64_t kPfnMask = (uint64_t{1} << 55) - 1;
constexpr uint64_t kPresent = uint64_t{1} << 63;
constexpr size_t kPage = 4096;
// What a mesh pass may add to the process's Pss outside the arena: the pages of its scratch
// arrays (candidates, bitmaps, pairs), mapped and touched on the first pass that needs them.
constexpr long kMetadataSlackKiB = 64;

// The physical frame number behind a virtual page; 0 when absent or hidden (not CAP_SYS_ADMIN).
uint64_t frameOf(int pagemapFd, uintptr_t addr) {
  uint64_t entry = 0;
  off_t at = static_cast<off_t>(addr / kPage * sizeof entry);
  if (pread(pagemapFd, &entry, sizeof entry, at) != static_cast<ssize_t>(sizeof entry)) return 0;
  return (entry & kPresent) != 0 ? entry & kPfnMask : 0;
}

// Calls onLine(line) for each line (NUL-terminated, without its newline) of a /proc file, read
// through a static buffer (no allocation). False when the file cannot be opened.
template <typename OnLine>
bool forEachProcLine(const char* path, OnLine onLine) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  static char buf[1 << 16];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0) break;
    have += static_cast<size_t>(n);
    buf[have] = '\0';
    char* line = buf;
    for (char* nl; (nl = std::strchr(line, '\n')) != nullptr; line = nl + 1) {
      *nl = '\0';
      onLine(line);
    }
    have = static_cast<size_t>(buf + have - line);
    std::memmove(buf, line, have);
  }
  close(fd);
  return true;
}

// Pss in KiB of libmesh's arena: the mappings that make up the reserved range holding `inside`
// (a heap address). The range is private anonymous memory except for meshed spans, which are
// mappings of the memfd "libmesh-arena", so it is found by its size (arena_reserved): a run of
// contiguous mappings, each anonymous or of that memfd, from a mapping start to a mapping end
// that far apart around `inside`. Read from /proc/self/smaps through a static buffer (no
// allocation); -1 when unavailable. *fileMappings: how many of the mappings summed are of the
// memfd. The kernel rounds each mapping's Pss down to a whole KiB; only a memfd mapping can have
// a fraction (a page mapped three times counts a third in each mapping; a private page counts
// whole), so the sum may be low by up to that many KiB.
long arenaPssKiB(const void* inside, long* fileMappings) {
  mesh_stats st{};
  mesh_get_stats(&st);
  auto addr = reinterpret_cast<uintptr_t>(inside);
  struct Vma {
    uintptr_t start, end;
    long pss;
    bool arenaKind;  // anonymous or the arena's memfd
    bool file;       // the arena's memfd
  };
  static Vma vmas[1 << 16];
  size_t count = 0;
  bool opened = forEachProcLine("/proc/self/smaps", [&](char* line) {
    // Mapping headers start with the (lower-case hex) address; field lines with a capital.
    bool header = (*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f');
    if (header && count < sizeof vmas / sizeof vmas[0]) {
      char* rest = nullptr;
      Vma v{std::strtoull(line, &rest, 16), std::strtoull(rest + 1, &rest, 16), 0, false, false};
      // "start-end perms offset dev inode [path]": anonymous when there is no path.
      const char* path = rest;
      for (int field = 0; field < 4 && path != nullptr; ++field) path = std::strchr(path + 1, ' ');
      while (path != nullptr && *path == ' ') ++path;
      v.file = path != nullptr && std::strstr(path, "libmesh-arena") != nullptr;
      v.arenaKind = v.file || path == nullptr || *path == '\0';
      vmas[count++] = v;
    } else if (!header && count > 0 && std::strncmp(line, "Pss:", 4) == 0) {
      vmas[count - 1].pss = std::strtol(line + 4, nullptr, 10);
    }
  });
  if (!opened) return -1;
  for (size_t first = 0; first < count; ++first) {
    if (vmas[first].start > addr || vmas[first].start + st.arena_reserved <= addr) continue;
    long total = 0;
    *fileMappings = 0;
    for (size_t i = first; i < count && vmas[i].arenaKind && (i == first || vmas[i].start == vmas[i - 1].end); ++i) {
      total += vmas[i].pss;
      *fileMappings += vmas[i].file ? 1 : 0;
      if (vmas[i].end == vmas[first].start + st.arena_reserved) return total;
    }
  }
  return -1;
}

// The mappings of libmesh's arena file ("libmesh-arena" memfd) from /proc/self/maps, read into
// static storage (no allocation). Meshed spans are mappings of that file: two virtual pages that
// map the same file offset are partners.
struct FileMap {
  uintptr_t start, end;
  uint64_t offset;
};
FileMap g_fileMaps[1 << 16];
size_t g_fileMapCount = 0;

bool readArenaFileMaps() {
  g_fileMapCount = 0;
  return forEachProcLine("/proc/self/maps", [](char* line) {
    // "start-end perms offset dev inode path"
    if (std::strstr(line, "libmesh-arena") == nullptr || g_fileMapCount == sizeof g_fileMaps / sizeof g_fileMaps[0]) return;
    char* rest = nullptr;
    FileMap m{};
    m.start = std::strtoull(line, &rest, 16);
    m.end = std::strtoull(rest + 1, &rest, 16);
    const char* offset = std::strchr(rest + 1, ' ');  // after the permissions
    if (offset == nullptr) return;
    m.offset = std::strtoull(offset + 1, nullptr, 16);
    g_fileMaps[g_fileMapCount++] = m;
  });
}

// The file offset the virtual page at addr maps, or UINT64_MAX when it is not in the arena file
// (anonymous memory).
uint64_t fileOffsetOf(uintptr_t addr) {
  for (size_t i = 0; i < g_fileMapCount; ++i) {
    const FileMap& m = g_fileMaps[i];
    if (addr >= m.start && addr < m.end) return m.offset + (addr - m.start);
  }
  return UINT64_MAX;
}

// Appends to out the virtual pages other than addr that map the file page at offset.
void partnersOf(uintptr_t addr, uint64_t offset, std::vector<uintptr_t>* out) {
  for (size_t i = 0; i < g_fileMapCount; ++i) {
    const FileMap& m = g_fileMaps[i];
    if (offset < m.offset || offset >= m.offset + (m.end - m.start)) continue;
    uintptr_t page = m.start + (offset - m.offset);
    if (page != addr) out->push_back(page);
  }
}

// Meshes made so far in the size class of `size`-byte objects: the "meshes:" figure of its line in
// the detailed report (mesh_print_stats level 2), written into a memfd and read back without
// allocating. -1 when the class has no line (no span, or size is no class size).
long long classMeshes(uint32_t size) {
  int fd = memfd_create("pagemap-property-report", MFD_CLOEXEC);
  if (fd < 0) return -1;
  mesh_print_stats(fd, 2);
  static char buf[1 << 16];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char key[32];
  std::snprintf(key, sizeof key, ", size:%u,", size);
  const char* line = std::strstr(buf, key);
  if (line == nullptr) return -1;
  const char* end = std::strchr(line, '\n');
  const char* meshes = std::strstr(line, ", meshes:");
  if (meshes == nullptr || (end != nullptr && meshes > end)) return -1;
  return std::strtoll(meshes + 9, nullptr, 10);
}

// Why pagemap frames cannot be read here, or "" when they can.
std::string pagemapUnavailable() {
  if (geteuid() != 0) return "not root: /proc/self/pagemap hides frame numbers";
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open /proc/self/pagemap";
  static char probe[kPage] __attribute__((aligned(kPage)));
  probe[0] = 1;
  uint64_t pfn = frameOf(fd, reinterpret_cast<uintptr_t>(probe));
  close(fd);
  if (pfn == 0) return "/proc/self/pagemap reads frame numbers as 0 (no CAP_SYS_ADMIN?)";
  if (harness::anon_pss_kib() < 0) return "no /proc/self/smaps_rollup";
  mesh_stats st{};
  mesh_get_stats(&st);
  if (st.memfd_backed == 0) return "the arena has no memfd (MESH_NO_MEMFD?): nothing meshes";
  void* probeHeap = std::malloc(64);
  long mappings = 0;
  long arena = arenaPssKiB(probeHeap, &mappings);
  std::free(probeHeap);
  if (arena < 0) return "cannot find libmesh's arena in /proc/self/smaps";
  return "";
}

void compactionSharesFramesAndKeepsPss() {
  // Classes that gtest and rapidcheck hardly use, so the spans meshed are ours. (Classes of 4 KiB
  // and more never mesh.)
  uint32_t size = *rc::gen::element<uint32_t>(768, 1280, 2560, 3584);
  int count = *rc::gen::inRange(500, 4000);
  int keepEvery = *rc::gen::inRange(2, 9);
  int keepOffset = *rc::gen::inRange(0, keepEvery);

  std::vector<char*> objects(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    objects[i] = static_cast<char*>(std::malloc(size));
    RC_ASSERT(objects[i] != nullptr);
    model::fillPattern(objects[i], 0, size, static_cast<uint64_t>(i) + 1);
  }
  std::vector<std::pair<char*, uint64_t>> kept;
  for (int i = 0; i < count; ++i) {
    if (i % keepEvery == keepOffset) {
      kept.emplace_back(objects[i], static_cast<uint64_t>(i) + 1);
    } else {
      std::free(objects[i]);
    }
  }
  // Every page of a kept object, collected before the compaction (nothing allocates after it).
  std::set<uintptr_t> pages;
  for (const auto& [p, id] : kept) {
    uintptr_t first = reinterpret_cast<uintptr_t>(p) / kPage;
    uintptr_t last = (reinterpret_cast<uintptr_t>(p) + size - 1) / kPage;
    for (uintptr_t pg = first; pg <= last; ++pg) pages.insert(pg * kPage);
  }
  std::vector<uintptr_t> partners;
  partners.reserve(16);

  mesh_stats before{}, after{};
  mesh_get_stats(&before);
  long long ourMeshesBefore = classMeshes(size);
  RC_ASSERT(ourMeshesBefore >= 0);  // the class holds our objects
  // Anonymous and memfd pages only: the Pss of shared library pages changes whenever another
  // process mapping them starts or exits (ctest -j2 runs other tests meanwhile), which made this
  // property flaky when it compared the whole Pss.
  long pssBefore = harness::anon_pss_kib();
  long fileMappingsBefore = 0, fileMappingsAfter = 0;
  long arenaBefore = arenaPssKiB(kept.empty() ? objects[0] : kept[0].first, &fileMappingsBefore);
  mesh_compact();
  long arenaAfter = arenaPssKiB(kept.empty() ? objects[0] : kept[0].first, &fileMappingsAfter);
  long pssAfter = harness::anon_pss_kib();
  mesh_get_stats(&after);
  uint64_t meshes = after.mesh_count - before.mesh_count;
  long long ourMeshesAfter = classMeshes(size);
  RC_ASSERT(ourMeshesAfter >= ourMeshesBefore);
  long long ourMeshes = ourMeshesAfter - ourMeshesBefore;
  RC_TAG(ourMeshes > 0 ? "meshed" : "no mesh");

  // Read and write back every kept object: each page is then present, on its own frame or on the
  // one it shares, and the contents must be intact.
  for (const auto& [p, id] : kept) {
    RC_ASSERT(model::findPatternMismatch(p, 0, size, id) == SIZE_MAX);
    volatile char* v = p;
    for (uint32_t i = 0; i < size; ++i) v[i] = v[i];
  }
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  RC_ASSERT(fd >= 0);
  RC_ASSERT(readArenaFileMaps());
  // frame -> what the page maps: its file offset, or (anonymous) the page's own address.
  std::map<uint64_t, std::pair<bool, uint64_t>> frameUse;
  size_t meshedPages = 0;
  for (uintptr_t pg : pages) {
    uint64_t frame = frameOf(fd, pg);
    RC_ASSERT(frame != 0u);
    uint64_t offset = fileOffsetOf(pg);
    std::pair<bool, uint64_t> use = offset == UINT64_MAX ? std::make_pair(false, uint64_t{pg}) : std::make_pair(true, offset);
    auto [it, fresh] = frameUse.emplace(frame, use);
    RC_ASSERT(fresh || it->second == use);  // two different pages' memory on one frame
    if (offset == UINT64_MAX) continue;
    partners.clear();
    partnersOf(pg, offset, &partners);
    if (!partners.empty()) ++meshedPages;
    for (uintptr_t partner : partners) {
      (void)*reinterpret_cast<const volatile char*>(partner);  // maps it, if nothing did yet
      RC_ASSERT(frameOf(fd, partner) == frame);
    }
  }
  close(fd);
  RC_LOG() << meshes << " meshes, " << ourMeshes << " of " << size << "-byte spans; " << pages.size() << " pages, " << meshedPages << " with a partner, on "
           << frameUse.size() << " frames" << std::endl;
  RC_LOG() << "meshed " << (after.meshed_bytes_total - before.meshed_bytes_total) / 1024 << " KiB; Pss " << pssBefore << " KiB -> " << pssAfter << " KiB; arena Pss " << arenaBefore
           << " KiB -> " << arenaAfter << " KiB (" << fileMappingsBefore << " -> " << fileMappingsAfter << " memfd mappings)"
           << std::endl;
  // A mesh in our class leaves kept objects on pages that have a partner. (Meshes of other
  // classes may come with the compaction; they free memory, counted below, but none of ours.)
  if (ourMeshes > 0) RC_ASSERT(meshedPages > 0u);
  // The heap's own pages fall by at least what the meshes freed (each frees its source span's
  // pages, meshed_bytes_total), and never grow through a compaction; up to the kernel's rounding
  // of the "before" figure (see arenaPssKiB). The process total may grow by the metadata a mesh
  // pass touches (its candidate arrays, first used at the first pass).
  long meshedKiB = static_cast<long>((after.meshed_bytes_total - before.meshed_bytes_total) / 1024);
  RC_ASSERT(arenaBefore >= 0);
  RC_ASSERT(meshes == 0 || meshedKiB >= static_cast<long>(kPage / 1024));
  RC_ASSERT(arenaAfter <= arenaBefore - meshedKiB + fileMappingsBefore);
  RC_ASSERT(pssAfter <= pssBefore + kMetadataSlackKiB);
  for (const auto& kv : kept) std::free(kv.first);
}

TEST(Pagemap, CompactionSharesFramesAndPssDoesNotRise) {
  std::string why = pagemapUnavailable();
  if (!why.empty()) GTEST_SKIP() << "pagemap property skipped: " << why;
  // The first compaction starts libmesh's write-protection thread (its stack and TLS count in
  // PSS once); a case compares PSS around a compaction, so that happens before the first case.
  mesh_compact();
  checkProperty(&compactionSharesFramesAndKeepsPss, 20);
}

}  // namespace
}  // namespace mesh::proptest
