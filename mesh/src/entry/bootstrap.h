// The bootstrap buffer: memory for the calls the heap cannot serve, before it exists and while
// our own code holds its locks.
#pragma once

#include <atomic>
#include <cstddef>

#include "common/lock.h"
#include "miniheap/size_classes.h"

namespace mesh {

// A bump allocator over static memory for the calls we cannot route through the heap:
// allocations while the heap is being initialised (dlsym, pthread_atfork may calloc) and
// allocations nested inside our own locked sections (a signal handler interrupting us). Blocks
// of small sizes are rounded to a size class and reused through per-class free lists; their
// lock is only ever tried (bounded), never waited for, so a handler cannot deadlock on it.
// Larger blocks get a private mapping of their own (mmap is async-signal-safe), recorded in a
// lock-free table and unmapped when freed, so handlers that allocate large blocks now and then
// cannot use up the static buffer; only when that table is full do they come from the buffer
// (and are then never reused).
class BootstrapBuffer {
 public:
  void* alloc(size_t n, size_t align);
  void release(void* p);
  bool contains(const void* p) const {
    if (static_cast<size_t>(static_cast<const char*>(p) - buf_) < kBytes) return true;
    return mappedCount_.load(std::memory_order_acquire) != 0 && findMapped(p) >= 0;
  }
  size_t usableSize(const void* p) const;

 private:
  bool freeLockTry() MESH_TRY_ACQUIRE(true, freeLock_);
  void* allocMapped(size_t n, size_t align);
  int findMapped(const void* p) const;

  static constexpr size_t kBytes = size_t{16} << 20;
  static constexpr int kMaxMapped = 64;
  alignas(4096) char buf_[kBytes];
  std::atomic<size_t> used_;
  Mutex freeLock_;
  void* freeLists_[kNumClasses];  // zero-initialised static storage
  // Blocks with a mapping of their own (nullptr: free entry), and how many there are.
  std::atomic<void*> mapped_[kMaxMapped];
  std::atomic<int> mappedCount_;
};

// The process's one buffer (zero-initialised static storage).
BootstrapBuffer& bootstrap();

}  // namespace mesh
