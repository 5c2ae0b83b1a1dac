// Every C++ operator new/delete: plain, array, nothrow, sized and align_val_t forms. A failing
// throwing new calls the installed new-handler until it succeeds, then throws std::bad_alloc
// when no handler is left; nothrow forms return nullptr.
#include <new>

#include "common/compiler.h"
#include "entry/allocate.h"

using namespace mesh;

namespace {

MESH_SLOW_PATH void* newSlow(size_t n, size_t align, bool nothrow) {
  for (;;) {
    void* p = align <= 16 ? allocate(n) : allocateAligned(n, align);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (...) {
        return nullptr;
      }
    } else {
      handler();
    }
  }
}

MESH_FAST_PATH void* newPlain(size_t n) {
  void* p = allocate(n);
  return MESH_LIKELY(p != nullptr) ? p : newSlow(n, 16, false);
}

MESH_FAST_PATH void* newAligned(size_t n, std::align_val_t a, bool nothrow) {
  size_t align = static_cast<size_t>(a);
  if (!isPowerOfTwoAlignment(align)) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  void* p = allocateAligned(n, align);
  return p != nullptr ? p : newSlow(n, align, nothrow);
}

}  // namespace

MESH_EXPORT void* operator new(size_t n) { return newPlain(n); }
MESH_EXPORT void* operator new[](size_t n) { return newPlain(n); }
MESH_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept {
  void* p = allocate(n);
  return p != nullptr ? p : newSlow(n, 16, true);
}
MESH_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  void* p = allocate(n);
  return p != nullptr ? p : newSlow(n, 16, true);
}
MESH_EXPORT void* operator new(size_t n, std::align_val_t a) { return newAligned(n, a, false); }
MESH_EXPORT void* operator new[](size_t n, std::align_val_t a) { return newAligned(n, a, false); }
MESH_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return newAligned(n, a, true);
}
MESH_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return newAligned(n, a, true);
}

MESH_EXPORT void operator delete(void* p) noexcept { deallocate(p); }
MESH_EXPORT void operator delete[](void* p) noexcept { deallocate(p); }
MESH_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { deallocate(p); }
MESH_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { deallocate(p); }
MESH_EXPORT void operator delete(void* p, size_t) noexcept { deallocate(p); }
MESH_EXPORT void operator delete[](void* p, size_t) noexcept { deallocate(p); }
MESH_EXPORT void operator delete(void* p, std::align_val_t) noexcept { deallocate(p); }
MESH_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { deallocate(p); }
MESH_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(p);
}
MESH_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(p);
}
MESH_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { deallocate(p); }
MESH_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { deallocate(p); }
