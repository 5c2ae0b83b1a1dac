// Reaching the C library's own definition of a function libmesh interposes.
#pragma once

#include <atomic>

#include "platform/os.h"

namespace mesh {

// The next definition of `name` after libmesh's (dlsym RTLD_NEXT), looked up on first use and
// cached; nullptr when the C library has none. The first lookup may allocate (dlsym's calloc):
// never make it under an allocator lock.
template <typename Fn>
Fn next(std::atomic<void*>& cache, const char* name) {
  void* f = cache.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = os::nextSymbol(name);
    cache.store(f, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(f);
}

}  // namespace mesh
