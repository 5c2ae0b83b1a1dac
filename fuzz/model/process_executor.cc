#include "model/process_executor.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cerrno>
#include <cstdlib>

namespace mesh::model {

ProcessExecutor::ProcessExecutor() {
  meshCompact_ = reinterpret_cast<size_t (*)()>(dlsym(RTLD_DEFAULT, "mesh_compact"));
}

void* ProcessExecutor::allocate(size_t n) { return std::malloc(n); }

void* ProcessExecutor::allocateAligned(size_t n, size_t align) {
  // Rotate through the three C interfaces so each is exercised.
  switch (alignedCalls_++ % 3) {
    case 0: {
      void* p = nullptr;
      int rc = posix_memalign(&p, align, n);
      if (rc != 0) {
        errno = rc;  // posix_memalign reports through its result, the model reads errno
        return nullptr;
      }
      return p;
    }
    case 1:
      return aligned_alloc(align, n);
    default:
      return memalign(align, n);
  }
}

void* ProcessExecutor::allocateZeroed(size_t count, size_t size) { return std::calloc(count, size); }

void* ProcessExecutor::reallocate(void* p, size_t n) { return std::realloc(p, n); }

void ProcessExecutor::release(void* p) { std::free(p); }

size_t ProcessExecutor::usableSize(void* p) { return malloc_usable_size(p); }

size_t ProcessExecutor::compact(bool) {
  // Thread caches stay attached here: the process allocator decides what a compaction takes.
  if (meshCompact_ != nullptr) return meshCompact_();
  malloc_trim(0);
  return 0;
}

}  // namespace mesh::model
