// Internal memory for allocator metadata, never from malloc.
//
// MetaVector<T>: a growable array of trivially copyable T in its own mapping (grows by remapping
// into a larger one). MetaPool<T>: type-stable objects carved from 1 MiB chunks; freed objects are
// reused but their memory is not unmapped while the pool exists, so a racing reader of a stale
// pointer still reads a valid (if recycled) object. The process heap's pools live forever; a
// destroyed pool (a test or fuzz heap) unmaps its chunks. Neither is thread-safe by itself:
// callers hold a lock.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>

#include "platform/os.h"

namespace mesh {

template <typename T>
class MetaVector {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  MetaVector() = default;
  ~MetaVector() {
    if (data_ != nullptr) os::unmap(data_, capacity_ * sizeof(T));
  }
  MetaVector(const MetaVector&) = delete;
  MetaVector& operator=(const MetaVector&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  T& back() { return data_[size_ - 1]; }
  void popBack() { --size_; }
  void clear() { size_ = 0; }
  void truncate(size_t n) { size_ = n; }
  void swapRemove(size_t i) { data_[i] = data_[--size_]; }

  // Makes the vector hold n elements (new ones uninitialised); false when out of memory.
  bool resize(size_t n) {
    while (capacity_ < n) {
      if (!grow()) return false;
    }
    size_ = n;
    return true;
  }

  // False when the mapping cannot grow (the element is not added).
  bool pushBack(const T& v) {
    if (size_ == capacity_ && !grow()) return false;
    data_[size_++] = v;
    return true;
  }

 private:
  bool grow() {
    size_t bytes = capacity_ == 0 ? os::kPageSize : capacity_ * sizeof(T) * 2;
    void* fresh = os::mapAnonymous(bytes);
    if (fresh == nullptr) return false;
    if (data_ != nullptr) {
      std::memcpy(fresh, data_, size_ * sizeof(T));
      os::unmap(data_, capacity_ * sizeof(T));
    }
    data_ = static_cast<T*>(fresh);
    capacity_ = bytes / sizeof(T);
    return true;
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

template <typename T>
class MetaPool {
 public:
  MetaPool() = default;
  ~MetaPool() {
    while (chunks_ != nullptr) {
      ChunkHeader* prev = chunks_->prev;
      os::unmap(chunks_, kChunkBytes);
      chunks_ = prev;
    }
  }
  MetaPool(const MetaPool&) = delete;
  MetaPool& operator=(const MetaPool&) = delete;

  // Returns uninitialised, suitably aligned storage for one T, or nullptr when out of memory.
  void* allocate() {
    if (freeList_ != nullptr) {
      FreeNode* n = freeList_;
      freeList_ = n->next;
      return n;
    }
    if (static_cast<size_t>(chunkEnd_ - cursor_) < kStride) {  // (no arithmetic on a null cursor)
      void* chunk = os::mapAnonymous(kChunkBytes);
      if (chunk == nullptr) return nullptr;
      // Chunks form a list through a header at their start, for the destructor.
      auto* header = static_cast<ChunkHeader*>(chunk);
      header->prev = chunks_;
      chunks_ = header;
      cursor_ = reinterpret_cast<char*>(chunk) + kHeaderBytes;
      chunkEnd_ = reinterpret_cast<char*>(chunk) + kChunkBytes;
    }
    void* p = cursor_;
    cursor_ += kStride;
    return p;
  }
  void release(void* p) {
    auto* n = static_cast<FreeNode*>(p);
    n->next = freeList_;
    freeList_ = n;
  }
  // In a fork child: nothing to do (the pool is private memory, copied by fork).

 private:
  struct FreeNode {
    FreeNode* next;
  };
  struct ChunkHeader {
    ChunkHeader* prev;
  };
  static constexpr size_t kAlign = alignof(T) > 16 ? alignof(T) : 16;
  static constexpr size_t kStride = (sizeof(T) + kAlign - 1) / kAlign * kAlign;
  static constexpr size_t kHeaderBytes = kAlign;
  static constexpr size_t kChunkBytes = size_t{1} << 20;
  static_assert(kHeaderBytes + kStride <= kChunkBytes);

  ChunkHeader* chunks_ = nullptr;
  FreeNode* freeList_ = nullptr;
  char* cursor_ = nullptr;
  char* chunkEnd_ = nullptr;
};

}  // namespace mesh
