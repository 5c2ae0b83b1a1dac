// Executor over a fresh GlobalHeap instance with its own small arena, plus two ThreadHeaps: one
// for the model's thread, one for the other thread. Every call goes through the allocator's own
// Frontend (frontend/frontend.h), the code behind malloc, free, realloc, calloc and
// malloc_usable_size in the process, with an environment of its own (ModelEnv) instead of the
// process's TLS, so nothing here touches the process-wide allocator: sanitizers and the
// fuzzer's own malloc coexist with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "frontend/frontend.h"
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

class FreshHeapExecutor;

// The Frontend's environment on a fresh heap: the executor's heap and the calling thread's
// ThreadHeap (the model's thread or the other one). There is no start-up buffer, and no signal
// handler can interrupt the heap's code, so the reentrancy marks do nothing and no call is
// nested or early. Frees do not pace meshing: meshing runs when the model compacts, so a run
// does not depend on the clock.
struct ModelEnv {
  struct LockedSection {
    LockedSection() {}
  };
  struct FastMark {
    explicit FastMark(ThreadHeap*) {}
    static constexpr bool usable() { return true; }
  };
  FreshHeapExecutor* executor = nullptr;

  GlobalHeap& heap() const;
  ThreadHeap* cacheHeap() const;
  ThreadHeap* threadHeap() const { return cacheHeap(); }
  ThreadHeap* refillHeap() const { return cacheHeap(); }
  ThreadHeap* adoptHeapForFree(const void*) const { return cacheHeap(); }
  static bool cacheBusy() { return false; }
  static bool nested() { return false; }
  static bool early(void**, size_t, size_t) { return false; }
  static bool isForeign(const void*) { return false; }
  static void releaseForeign(void*) {}
  static size_t foreignUsableSize(const void*) { return 0; }
  static void afterFrees(uint32_t) {}
  static void countShared(bool, size_t) {}
};

class FreshHeapExecutor final : public Executor {
 public:
  explicit FreshHeapExecutor(const FreshHeapOptions& options = {});
  ~FreshHeapExecutor() override;

  // False when the arena could not be reserved (then nothing else may be called).
  bool ok() const { return ok_; }
  GlobalHeap& heap() { return *heap_; }
  // The ThreadHeap of the calling thread (the model's or the other thread).
  ThreadHeap& current();

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
  bool setsErrno() const override { return true; }  // the front end sets errno, as malloc does
  std::string checkEmpty() override;

 private:
  // What thread exit does to every thread heap: flush its caches, give its spans back.
  void detachAllThreads();

  FreshHeapOptions options_;
  bool ok_ = false;
  std::unique_ptr<GlobalHeap> heap_;
  std::unique_ptr<ThreadHeap> main_;
  std::unique_ptr<ThreadHeap> other_;  // created, used and destroyed on the other thread only
  Frontend<ModelEnv> frontend_;
  uint64_t otherSeed_;
  OtherThread thread_;
};

}  // namespace mesh::model
