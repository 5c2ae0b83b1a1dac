// Frontend: the allocation and free policy of the malloc family, over one GlobalHeap and the
// caller's ThreadHeap. It decides small or large, cache or global heap, keeps or returns large
// blocks, batches frees through the thread's freed stacks, reports misuse, and implements
// realloc, calloc and aligned allocation. The process's entry points run it (entry/allocate.h),
// and so do the fuzzer and the property tests over heaps of their own (fuzz/model): one policy,
// tested where it runs.
//
// What differs between those callers is the environment, the Env parameter:
//   GlobalHeap& heap()              the heap (a constant address in the process, so the fast
//                                   paths load nothing to find it)
//   ThreadHeap* cacheHeap()         the caller's thread heap when its cache may be used now, else
//                                   nullptr (in the process: none yet, or a signal handler
//                                   interrupted our own code)
//   ThreadHeap* threadHeap()        the caller's thread heap even when its cache is busy
//   ThreadHeap* refillHeap()        the caller's heap, created if need be, for a refill (called in
//                                   a locked section; nullptr: serve without one)
//   ThreadHeap* adoptHeapForFree(p) the heap a thread without one gets when its first call is a
//                                   free of p (nullptr: free without one)
//   bool cacheBusy()                the call interrupted a fast path of this thread
//   bool nested()                   the call interrupted code of ours that may hold locks
//   bool early(void** result, n, align)   true when the heap must not be used for this
//                                   allocation (start-up, nested call); *result is then the
//                                   answer, served some other way
//   bool isForeign(p)               p is no heap block but the Env's own (a start-up buffer)
//   void releaseForeign(p)          frees such a block
//   size_t foreignUsableSize(p)     and tells its usable size
//   void afterFrees(uint32_t n)     n frees reached the spans (pacing of meshing and decay)
//   void countShared(bool alloc, size_t bytes)   counts a call no thread heap counts
//   LockedSection                   RAII mark of code that may take allocator locks (a signal
//                                   handler arriving meanwhile must not wait for one)
//   FastMark(ThreadHeap*)           RAII mark of the few instructions that update the cache
//                                   without a lock (a handler arriving meanwhile avoids it);
//                                   its usable() false: leave the cache alone (another thread
//                                   is returning it), a locked section will wait
//
// The fast paths are here, inline; the slow paths are in frontend_impl.h, which each Env's
// translation unit includes once to instantiate them.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/compiler.h"
#include "global/global_heap.h"
#include "miniheap/page_entry.h"
#include "miniheap/size_classes.h"
#include "platform/os.h"
#include "thread/thread_heap.h"

namespace mesh {

static_assert(kEntryPageShift == os::kPageShift);

template <class Env>
class Frontend {
 public:
  Frontend() = default;
  explicit Frontend(const Env& env) : env_(env) {}

  // malloc: n bytes aligned to 16, or nullptr with errno ENOMEM.
  MESH_FAST_PATH void* allocate(size_t n) {
    ThreadHeap* th = env_.cacheHeap();
    if (MESH_LIKELY(n <= kMaxSmallSize && th != nullptr)) {
      // Mark first, then look at the cache: a handler running before the mark has finished
      // with the cache by the time we read it.
      typename Env::FastMark mark(th);
      if (MESH_LIKELY(mark.usable())) {
        void* p = th->tryAllocLine(classLineForSize(n));
        if (MESH_LIKELY(p != nullptr)) return p;
      }
    }
    if constexpr (kStateless) return mallocSlowStatic(n);
    else return mallocSlow(n);
  }

  // free: a small object goes on the thread's freed stack of its class (ThreadHeap::
  // tryPushFreed), whichever span it is in. Class and slot read here can be stale only for a
  // pointer that is not live; the batch checks them under the lock. Anything unusual (stack
  // full, interior pointer, large object, misuse) takes the slow path, which reports misuse.
  MESH_FAST_PATH void deallocate(void* p) {
    ThreadHeap* th = env_.cacheHeap();
    const Arena& arena = env_.heap().arena();
    size_t x = arena.offsetOf(p);
    // The page map's fixed bound, not the (growing) range: an entry past the range reads as 0.
    if (MESH_LIKELY(th != nullptr && x < arena.mappedBoundBytes())) {
      bool done = false;
      {
        typename Env::FastMark mark(th);
        uintptr_t entry = arena.mapEntry(x >> os::kPageShift);
        MiniHeap* mh = entryMiniHeap(entry);
        if (MESH_LIKELY(mh != nullptr)) {
          // Offset inside the span: offset in the page plus the page's offset in the span.
          size_t offset = (x & (os::kPageSize - 1)) | entryOffsetInSpan(entry);
          size_t slot;
          // (A large object has no slots; tryPushFreed's bitmap test bounds the slot.)
          if (MESH_LIKELY(mh->slotStartForOffset(offset, &slot) && mark.usable())) {
            done = th->tryPushFreed(mh, slot, p);
          }
        }
      }
      if (MESH_LIKELY(done)) return;
    }
    if constexpr (kStateless) freeSlowStatic(p);
    else freeSlow(p);
  }

  // malloc's slow path: everything but "this thread's cache has a slot of the right class".
  void* mallocSlow(size_t n);
  // free's: everything but "the freed stack of p's class has room".
  void freeSlow(void* p);
  // Serves n bytes aligned to `align` (a power of two >= 16). *zeroed tells the caller whether
  // the memory is known to be zero (fresh pages), so calloc can skip clearing it.
  MESH_SLOW_PATH void* allocateSlow(size_t n, size_t align, bool* zeroed);
  // n bytes aligned to align (a power of two).
  void* allocateAligned(size_t n, size_t align) {
    if (align <= 16) return allocate(n);
    bool zeroed;
    return allocateSlow(n, align, &zeroed);
  }
  // calloc: zeroed memory for count*size bytes, ENOMEM on overflow. Fresh pages are not written.
  void* allocateZeroed(size_t count, size_t size);
  // realloc: nullptr p allocates, size 0 frees (and returns nullptr), otherwise may return p.
  void* reallocate(void* p, size_t n);
  // Usable size of a live block (0 for nullptr); aborts naming `caller` on anything else.
  // Servers ask for the size of every block they allocate and free (Redis's memory accounting),
  // so a live small object is answered here without a call, a pin or a stack frame: the checks
  // are the slow path's (the start of a slot, live, not freed remotely, not on a freed stack)
  // and what they read from the miniheap holds if p's page-map entry is unchanged afterwards (a
  // mesh or a release of the span changes the entry before the miniheap can be reused).
  // Anything else (nullptr, a large block, the bootstrap buffer, misuse, a race with a mesh)
  // takes usableSizeSlow, which reports misuse.
  MESH_FAST_PATH size_t usableSize(void* p, const char* caller) {
    const GlobalHeap& heap = env_.heap();
    const Arena& arena = heap.arena();
    size_t x = arena.offsetOf(p);
    if (MESH_LIKELY(x < arena.mappedBoundBytes())) {
      uintptr_t entry = arena.mapEntry(x >> os::kPageShift);
      const MiniHeap* mh = entryMiniHeap(entry);
      size_t slot;
      // (A large object has no slots; a tail offset gives a slot whose bit is never set.)
      if (MESH_LIKELY(mh != nullptr &&
                      mh->slotStartForOffset((x & (os::kPageSize - 1)) | entryOffsetInSpan(entry), &slot) &&
                      mh->isLiveUnfreed(slot) && !heap.carriesFreedKey(p))) {
        size_t size = mh->objectSize();
        std::atomic_thread_fence(std::memory_order_acquire);  // the reads above before the re-read
        if (MESH_LIKELY(arena.mapEntry(x >> os::kPageShift) == entry)) return size;
      }
    }
    if constexpr (kStateless) return usableSizeSlowStatic(p, caller);
    else return usableSizeSlow(p, caller);
  }
  MESH_SLOW_PATH size_t usableSizeSlow(void* p, const char* caller);
  // Hands the whole freed-object stack of every class and the kept large blocks back to the
  // spans (thread exit, trim, compaction).
  void flushAll(ThreadHeap* th);
  // Hands everything th's cache holds back: the freed stacks, the kept large blocks and the
  // attached spans with their free slots. th may be another thread's heap, which the caller
  // has made sure its owner does not use meanwhile (entry/background.cc). Not counted as frees
  // for the pacing of meshing.
  void returnCache(ThreadHeap* th);

 private:
  // A stateless Env (the process's) reaches the slow paths through static functions: the fast
  // path then passes nothing but its argument and ends in a tail call, as a plain function
  // would (an object would need a register and a stack frame).
  static constexpr bool kStateless = std::is_empty_v<Env>;
  MESH_WARM_PATH static void* mallocSlowStatic(size_t n) { return Frontend().mallocSlow(n); }
  MESH_WARM_PATH static void freeSlowStatic(void* p) { Frontend().freeSlow(p); }
  MESH_WARM_PATH static size_t usableSizeSlowStatic(void* p, const char* caller) {
    return Frontend().usableSizeSlow(p, caller);
  }
  MESH_SLOW_PATH void freeBeyondCache(void* p);
  void freeToGlobalHeap(void* p);
  void flushFreed(ThreadHeap* th, int cls, uint32_t n);
  void collectIdleFreed(ThreadHeap* th);
  bool isStackedObject(void* p) { return env_.heap().carriesFreedKey(p); }

  [[no_unique_address]] Env env_;
};

}  // namespace mesh
