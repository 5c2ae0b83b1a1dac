// The C allocation API, exported under the standard names. Each function is a thin wrapper over
// entry/allocate.h; the behaviour on bad input follows docs/behaviour.md section A.
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/compiler.h"
#include "entry/allocate.h"
#include "entry/stats_report.h"

using namespace mesh;

extern "C" {

MESH_EXPORT void* malloc(size_t n) { return allocate(n); }

MESH_EXPORT void free(void* p) { deallocate(p); }

MESH_EXPORT void cfree(void* p) { deallocate(p); }

MESH_EXPORT void* calloc(size_t count, size_t size) { return allocateZeroed(count, size); }

MESH_EXPORT void* realloc(void* p, size_t n) { return reallocate(p, n); }

MESH_EXPORT void* reallocarray(void* p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, n);
}

MESH_EXPORT int posix_memalign(void** out, size_t align, size_t n) {
  if (align < sizeof(void*) || !isPowerOfTwoAlignment(align)) return EINVAL;
  int saved = errno;
  void* p = allocateAligned(n, align);
  if (p == nullptr) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

MESH_EXPORT void* aligned_alloc(size_t align, size_t n) {
  if (!isPowerOfTwoAlignment(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return allocateAligned(n, align);
}

// glibc semantics: a non-power-of-two alignment is rounded up to the next power of two.
MESH_EXPORT void* memalign(size_t align, size_t n) {
  if (!isPowerOfTwoAlignment(align)) {
    if (align > (size_t{1} << 62)) {
      errno = EINVAL;
      return nullptr;
    }
    size_t rounded = 1;
    while (rounded < align) rounded <<= 1;
    align = rounded;
  }
  return allocateAligned(n, align);
}

MESH_EXPORT void* valloc(size_t n) { return allocateAligned(n, os::kPageSize); }

MESH_EXPORT void* pvalloc(size_t n) {
  size_t rounded = (n + os::kPageSize - 1) & ~(os::kPageSize - 1);
  if (rounded < n) {
    errno = ENOMEM;
    return nullptr;
  }
  return allocateAligned(rounded == 0 ? os::kPageSize : rounded, os::kPageSize);
}

MESH_EXPORT size_t malloc_usable_size(void* p) { return usableSize(p, "malloc_usable_size"); }

MESH_EXPORT int malloc_trim(size_t) { return releaseFreeMemoryForApi() > 0 ? 1 : 0; }

MESH_EXPORT struct mallinfo2 mallinfo2() { return mallinfoFromStats(); }

MESH_EXPORT struct mallinfo mallinfo() {
  struct mallinfo2 m2 = mallinfoFromStats();
  struct mallinfo m {};
  m.arena = static_cast<int>(m2.arena);
  m.ordblks = static_cast<int>(m2.ordblks);
  m.hblks = static_cast<int>(m2.hblks);
  m.hblkhd = static_cast<int>(m2.hblkhd);
  m.uordblks = static_cast<int>(m2.uordblks);
  m.fordblks = static_cast<int>(m2.fordblks);
  m.keepcost = static_cast<int>(m2.keepcost);
  return m;
}

// Tuning knobs of glibc do not apply; accept the known ones so callers see success.
MESH_EXPORT int mallopt(int param, int) {
  switch (param) {
    case M_MXFAST: case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_THRESHOLD:
    case M_MMAP_MAX: case M_CHECK_ACTION: case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
      return 1;
    default:
      return 0;
  }
}

MESH_EXPORT void malloc_stats() { printMallocStats(STDERR_FILENO); }

MESH_EXPORT int malloc_info(int options, FILE* out) {
  if (options != 0 || out == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return writeMallocInfo(out);
}

}  // extern "C"
