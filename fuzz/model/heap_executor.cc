#include "model/heap_executor.h"

#include "frontend/frontend_impl.h"

namespace mesh::model {

GlobalHeap& ModelEnv::heap() const { return executor->heap(); }
ThreadHeap* ModelEnv::cacheHeap() const { return &executor->current(); }

FreshHeapExecutor::FreshHeapExecutor(const FreshHeapOptions& options)
    : options_(options),
      heap_(std::make_unique<GlobalHeap>()),
      frontend_(ModelEnv{this}),
      otherSeed_(options.seed * 2 + 1) {
  HeapConfig config;
  config.arena.reserveBytes = options.arenaBytes;
  config.arena.minReserveBytes = options.arenaBytes;
  config.arena.maxDirtyBytes = options.maxDirtyBytes;
  config.arena.useMemfd = options.memfd;
  // Sparse spans (G33) in every class, however small the heap: the fuzzer and the property tests
  // then take the path that frees a sparse span's objects straight to it as often as any other.
  config.sparseMinFreeBytes = 0;
  ok_ = heap_->init(config);
  main_ = std::make_unique<ThreadHeap>(heap_.get(), options.seed * 2);
}

FreshHeapExecutor::~FreshHeapExecutor() {
  if (ok_) detachAllThreads();
  if (thread_.running()) thread_.run([this] { other_.reset(); });
  thread_.stop();
}

ThreadHeap& FreshHeapExecutor::current() { return thread_.isCurrent() ? *other_ : *main_; }

void FreshHeapExecutor::detachAllThreads() {
  frontend_.flushAll(main_.get());
  main_->detachAll();
  if (thread_.running()) {
    thread_.run([this] {
      if (other_ == nullptr) return;
      frontend_.flushAll(other_.get());
      other_->detachAll();
    });
  }
}

void* FreshHeapExecutor::allocate(size_t n) { return frontend_.allocate(n); }

void* FreshHeapExecutor::allocateAligned(size_t n, size_t align) {
  return frontend_.allocateAligned(n, align);
}

// Large blocks the arena reports as fresh are not cleared: the model then checks the claim.
void* FreshHeapExecutor::allocateZeroed(size_t count, size_t size) {
  return frontend_.allocateZeroed(count, size);
}

void* FreshHeapExecutor::reallocate(void* p, size_t n) { return frontend_.reallocate(p, n); }

void FreshHeapExecutor::release(void* p) { frontend_.deallocate(p); }

size_t FreshHeapExecutor::usableSize(void* p) { return frontend_.usableSize(p, "malloc_usable_size"); }

size_t FreshHeapExecutor::compact(bool detachFirst) {
  // mesh_compact() first returns the calling thread's freed objects (flushAllFreed).
  if (detachFirst) detachAllThreads();
  else frontend_.flushAll(&current());
  // MESH-COMPACT-HOOK: the one place where the model forces a mesh pass on a fresh heap:
  // GlobalHeap::meshAll() meshes every class until no pair is left, as mesh_compact() does.
  size_t meshes = heap_->meshAll();
  heap_->releaseFreeMemory();
  return meshes;
}
void FreshHeapExecutor::onOtherThread(const std::function<void()>& fn) {
  thread_.run([&] {
    if (other_ == nullptr) other_ = std::make_unique<ThreadHeap>(heap_.get(), otherSeed_ += 2);
    fn();
  });
}

void FreshHeapExecutor::retireOtherThread() {
  if (!thread_.running()) return;
  // What a thread exit does: return the freed objects it holds and give the spans back; its
  // objects stay live.
  thread_.run([this] {
    if (other_ != nullptr) {
      frontend_.flushAll(other_.get());
      other_->detachAll();
    }
    other_.reset();
  });
  thread_.stop();
}

bool FreshHeapExecutor::mayRunOutOfMemory(size_t n) {
  // Fragmentation can leave a large request without a contiguous run well before the arena is
  // full; allow failures from half-full on.
  ArenaStats a = heap_->arena().stats();
  return a.inUseBytes + n + (size_t{64} << 10) > a.reservedBytes / 2;
}

std::string FreshHeapExecutor::checkEmpty() {
  detachAllThreads();
  heap_->releaseFreeMemory();
  HeapStats s = heap_->stats();
  if (s.mhLive == 0 && s.largeBytes == 0 && s.arena.inUseBytes == 0) return "";
  return "every object was freed and every thread heap detached, but the heap still has " +
         std::to_string(s.mhLive) + " live miniheaps, " + std::to_string(s.largeBytes) +
         " large bytes and " + std::to_string(s.arena.inUseBytes) + " arena bytes in use";
}

}  // namespace mesh::model
