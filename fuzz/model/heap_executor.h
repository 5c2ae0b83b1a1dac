// Executor over a fresh GlobalHeap instance with its own small arena, plus two ThreadHeaps: one
// for the model's thread, one for the other thread. It plays the part of the entry layer
// (size -> class, small vs large, realloc, calloc, the page-map lookup of free) on top of the
// mesh_core API, so nothing here touches the process-wide allocator: sanitizers and the
// fuzzer's own malloc coexist with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "global/global_heap.h"
#include "model/alloc_model.h"
#include "model/other_thread.h"
#include "thread/thread_heap.h"

namespace mesh::model {

struct FreshHeapOptions {
  // Big enough that no sequence within the model's Limits runs out (the fuzzer must not see
  // legitimate out-of-memory), small enough to be reserved and torn down per test case.
  size_t arenaBytes = size_t{256} << 20;
  size_t maxDirtyBytes = size_t{1} << 20;
  bool memfd = true;
  uint64_t seed = 1;  // thread heaps' slot shuffling
};

class FreshHeapExecutor final : public Executor {
 public:
  explicit FreshHeapExecutor(const FreshHeapOptions& options = {});
  ~FreshHeapExecutor() override;

  // False when the arena could not be reserved (then nothing else may be called).
  bool ok() const { return ok_; }
  GlobalHeap& heap() { return *heap_; }

  const char* name() const override { return "fresh GlobalHeap"; }
  void* allocate(size_t n) override;
  void* allocateAligned(size_t n, size_t align) override;
  void* allocateZeroed(size_t count, size_t size) override;
  void* reallocate(void* p, size_t n) override;
  void release(void* p) override;
  size_t usableSize(void* p) override;
  size_t compact(bool detachFirst) override;
  void onOtherThread(const std::function<void()>& fn) override;
  void retireOtherThread() override;
  bool mayRunOutOfMemory(size_t n) override;
  bool setsErrno() const override { return false; }
  std::string checkEmpty() override;

 private:
  ThreadHeap& current();
  void* allocateSmall(int cls);
  void* allocateLarge(size_t n, size_t align, bool* zeroed);
  // The entry layer's unbatched free (freeToGlobalHeap): the owner's slot array or the remote path.
  void releaseNow(void* p);
  void flushFreed(ThreadHeap& th, int cls, uint32_t n);
  void collectIdleFreed(ThreadHeap& th);
  // What thread exit, trim and compaction do to a thread's cache first (flushAllFreed).
  void flushAll(ThreadHeap& th);
  void detachAllThreads();

  FreshHeapOptions options_;
  bool ok_ = false;
  std::unique_ptr<GlobalHeap> heap_;
  std::unique_ptr<ThreadHeap> main_;
  std::unique_ptr<ThreadHeap> other_;  // created, used and destroyed on the other thread only
  uint64_t otherSeed_;
  OtherThread thread_;
};

}  // namespace mesh::model
