// Executor over the process allocator: plain malloc, calloc, realloc, posix_memalign /
// aligned_alloc / memalign, free, malloc_usable_size, and mesh_compact() found with dlsym. Linked
// into a program that links libmesh (target `mesh`), it exercises the real entry points,
// thread caches and the process-wide heap; anywhere else it tests whatever malloc the process has
// (compaction is then malloc_trim(0)).
#pragma once

#include <cstddef>
#include <string>

#include "model/alloc_model.h"
#include "model/other_thread.h"

namespace mesh::model {

class ProcessExecutor final : public Executor {
 public:
  ProcessExecutor();
  ~ProcessExecutor() override { thread_.stop(); }

  // True when the process allocator exports the libmesh extension API.
  bool isLibmesh() const { return meshCompact_ != nullptr; }

  const char* name() const override { return "process allocator"; }
  void* allocate(size_t n) override;
  void* allocateAligned(size_t n, size_t align) override;
  void* allocateZeroed(size_t count, size_t size) override;
  void* reallocate(void* p, size_t n) override;
  void release(void* p) override;
  size_t usableSize(void* p) override;
  size_t compact(bool detachFirst) override;
  void onOtherThread(const std::function<void()>& fn) override { thread_.run(fn); }
  void retireOtherThread() override { thread_.stop(); }
  bool mayRunOutOfMemory(size_t) override { return false; }
  bool setsErrno() const override { return true; }
  std::string checkEmpty() override { return ""; }  // other code shares this heap

 private:
  size_t (*meshCompact_)() = nullptr;
  unsigned alignedCalls_ = 0;
  OtherThread thread_;
};

}  // namespace mesh::model
