// Uses libmesh's extension API (mesh/mesh.h) and checks that the program's allocations really
// go to libmesh: the allocation counter must rise by at least as many allocations as we make,
// whether they come from our own code (malloc, new) or from inside libc (strdup).
//
// Prints "mesh-consumer: OK ..." and exits 0 on success; prints what went wrong and exits 1.
#include <mesh/mesh.h>

#include <dlfcn.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "mesh-consumer: FAILED: %s\n", what);
    ++failures;
  }
}

mesh_stats snapshot() {
  mesh_stats s;
  check(mesh_get_stats(&s) == 0, "mesh_get_stats returns 0");
  return s;
}

// Where the malloc this program calls is defined (a shared library, or the program itself
// when libmesh is linked statically).
std::string mallocOrigin() {
  Dl_info info{};
  void* fn = reinterpret_cast<void*>(&std::malloc);
  if (dladdr(fn, &info) == 0 || info.dli_fname == nullptr) return "?";
  return info.dli_fname;
}

}  // namespace

int main() {
  constexpr int kBlocks = 2000;
  const mesh_stats before = snapshot();

  // Allocations from our own code: malloc of assorted sizes (small and large) and new.
  std::vector<void*> blocks;
  blocks.reserve(kBlocks);
  for (int i = 0; i < kBlocks; ++i) {
    size_t size = 16 + static_cast<size_t>(i % 50) * 40 + (i % 100 == 0 ? 100000 : 0);
    void* p = std::malloc(size);
    check(p != nullptr, "malloc returns memory");
    if (p != nullptr) std::memset(p, i & 0xff, size);
    blocks.push_back(p);
  }
  std::vector<std::unique_ptr<std::string>> strings;
  for (int i = 0; i < kBlocks; ++i) {
    strings.push_back(std::make_unique<std::string>(64, static_cast<char>('a' + i % 26)));
  }
  const mesh_stats during = snapshot();
  check(during.allocs >= before.allocs + 2 * kBlocks, "allocs counts our malloc and new calls");
  check(during.bytes_in_use > before.bytes_in_use, "bytes_in_use rises while blocks are live");

  // Allocations made inside libc must reach libmesh too (the link-order check).
  std::vector<char*> copies;
  for (int i = 0; i < kBlocks; ++i) copies.push_back(strdup("allocated inside libc"));
  const mesh_stats afterStrdup = snapshot();
  check(afterStrdup.allocs >= during.allocs + kBlocks, "allocs counts libc's strdup");

  for (char* c : copies) std::free(c);
  for (void* p : blocks) std::free(p);
  strings.clear();
  const mesh_stats afterFree = snapshot();
  check(afterFree.frees >= afterStrdup.frees + 4 * kBlocks, "frees counts every free and delete");

  // Options by name: read one, change it, read it back; bad names and values are refused.
  long period = -1;
  check(mesh_get_option("period_ms", &period) == 0 && period >= 0, "mesh_get_option(period_ms)");
  check(mesh_set_option("period_ms", 250) == 0, "mesh_set_option(period_ms, 250)");
  long now = -1;
  check(mesh_get_option("period_ms", &now) == 0 && now == 250, "period_ms reads back as 250");
  check(mesh_set_option("period_ms", -1) == EINVAL, "an out-of-range value gives EINVAL");
  check(mesh_set_option("no_such_option", 1) == EINVAL, "an unknown option gives EINVAL");
  mesh_set_option("period_ms", period);

  // Compaction and release: counts, not errors, so any value is fine.
  size_t meshes = mesh_compact();
  size_t released = mesh_release_free_memory();

  // JSON: ask for the size first, then fill a buffer with room to spare (the figures may grow
  // a digit in between: allocating the buffer is itself an allocation).
  size_t need = mesh_stats_json(nullptr, 0);
  std::string json(need + 64, '\0');
  size_t wrote = mesh_stats_json(json.data(), json.size());
  check(wrote < json.size(), "mesh_stats_json fits the buffer");
  json.resize(wrote < json.size() ? wrote : json.size() - 1);
  check(!json.empty() && json.front() == '{' && json.back() == '}', "mesh_stats_json is an object");
  check(json.find("\"allocs\":") != std::string::npos, "mesh_stats_json has allocs");

  const mesh_stats after = snapshot();
  std::printf("malloc from: %s\n", mallocOrigin().c_str());
  std::printf("stats: %s\n", json.c_str());
  std::printf("compaction: %zu meshes, %zu bytes released; arena %s\n", meshes, released,
              after.memfd_backed ? "memfd-backed" : "anonymous");
  if (failures != 0) {
    std::fprintf(stderr, "mesh-consumer: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("mesh-consumer: OK (malloc is libmesh's: allocs rose by %llu)\n",
              static_cast<unsigned long long>(after.allocs - before.allocs));
  return 0;
}
