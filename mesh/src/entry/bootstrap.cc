#include "entry/bootstrap.h"

#include "platform/os.h"

namespace mesh {

// Zero-initialised static storage: its pages cost nothing until used.
static BootstrapBuffer g_bootstrap;
BootstrapBuffer& bootstrap() { return g_bootstrap; }

void* BootstrapBuffer::alloc(size_t n, size_t align) {
  if (align < 16) align = 16;
  if (align > 4096) return nullptr;
  if (n > kMaxSmallSize) {
    void* p = allocMapped(n, align);
    if (p != nullptr || n > kBytes) return p;
  }
  size_t need = (n + 15) / 16 * 16;
  if (n <= kMaxSmallSize && align == 16) {
    int cls = classForSize(n);
    need = sizeClass(cls).size;
    if (freeLockTry()) {
      void* p = freeLists_[cls];
      if (p != nullptr) freeLists_[cls] = *static_cast<void**>(p);
      freeLock_.unlock();
      if (p != nullptr) return p;
    }
  }
  size_t old = used_.load(std::memory_order_relaxed);
  for (;;) {
    size_t start = (old + 16 + align - 1) & ~(align - 1);  // 16 bytes for the size header
    if (start + need > kBytes) return nullptr;
    if (used_.compare_exchange_weak(old, start + need, std::memory_order_relaxed)) {
      reinterpret_cast<size_t*>(buf_ + start)[-1] = need;
      return buf_ + start;
    }
  }
}

bool BootstrapBuffer::freeLockTry() { return freeLock_.tryLockBounded(); }

// A block of its own mapping: the usable size sits in the word before it (as for buffer blocks)
// and the block's offset from the mapping's start in the word before that.
void* BootstrapBuffer::allocMapped(size_t n, size_t align) {
  size_t offset = align < 16 ? 16 : align;
  size_t need = (n + 15) / 16 * 16;
  if (need < n || need > (size_t{1} << 46)) return nullptr;
  size_t len = (offset + need + os::kPageSize - 1) & ~(os::kPageSize - 1);
  for (int i = 0; i < kMaxMapped; ++i) {
    void* none = nullptr;
    // Claim the entry with a marker first, so no other call can take it while we map.
    void* claim = reinterpret_cast<void*>(uintptr_t{1});
    if (mapped_[i].load(std::memory_order_relaxed) != nullptr ||
        !mapped_[i].compare_exchange_strong(none, claim, std::memory_order_acq_rel)) {
      continue;
    }
    char* base = static_cast<char*>(os::mapAnonymous(len));
    if (base == nullptr) {
      mapped_[i].store(nullptr, std::memory_order_release);
      return nullptr;
    }
    char* block = base + offset;
    reinterpret_cast<size_t*>(block)[-1] = need;
    reinterpret_cast<size_t*>(block)[-2] = offset;
    mappedCount_.fetch_add(1, std::memory_order_acq_rel);
    mapped_[i].store(block, std::memory_order_release);
    return block;
  }
  return nullptr;  // table full: the caller falls back to the buffer
}

int BootstrapBuffer::findMapped(const void* p) const {
  for (int i = 0; i < kMaxMapped; ++i) {
    if (mapped_[i].load(std::memory_order_acquire) == p) return i;
  }
  return -1;
}

void BootstrapBuffer::release(void* p) {
  int i = findMapped(p);
  if (i >= 0) {
    void* expected = p;
    // Only one free of a block can win the entry; a second (a double free) finds it gone.
    if (!mapped_[i].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel)) return;
    mappedCount_.fetch_sub(1, std::memory_order_acq_rel);
    size_t need = usableSize(p);
    size_t offset = reinterpret_cast<const size_t*>(p)[-2];
    char* base = static_cast<char*>(p) - offset;
    os::unmap(base, (offset + need + os::kPageSize - 1) & ~(os::kPageSize - 1));
    return;
  }
  size_t size = usableSize(p);
  if (size > kMaxSmallSize) return;  // kept: large bootstrap blocks are rare
  int cls = classForSize(size);
  if (sizeClass(cls).size != size || !freeLockTry()) return;  // leaked rather than blocking
  *static_cast<void**>(p) = freeLists_[cls];
  freeLists_[cls] = p;
  freeLock_.unlock();
}

size_t BootstrapBuffer::usableSize(const void* p) const {
  return reinterpret_cast<const size_t*>(p)[-1];
}

}  // namespace mesh
