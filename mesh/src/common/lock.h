// A small futex mutex with clang thread-safety annotations. Allocator locks must not allocate
// and must survive fork (the child re-initialises them with resetAfterFork()).
#pragma once

#include <atomic>

#include "platform/cpu.h"
#include "platform/os.h"

#if defined(__clang__)
#define MESH_CAPABILITY(x) __attribute__((capability(x)))
#define MESH_GUARDED_BY(x) __attribute__((guarded_by(x)))
#define MESH_REQUIRES(...) __attribute__((requires_capability(__VA_ARGS__)))
#define MESH_ACQUIRE(...) __attribute__((acquire_capability(__VA_ARGS__)))
#define MESH_RELEASE(...) __attribute__((release_capability(__VA_ARGS__)))
#define MESH_TRY_ACQUIRE(...) __attribute__((try_acquire_capability(__VA_ARGS__)))
#define MESH_SCOPED_CAPABILITY __attribute__((scoped_lockable))
#define MESH_NO_THREAD_SAFETY_ANALYSIS __attribute__((no_thread_safety_analysis))
#else
#define MESH_CAPABILITY(x)
#define MESH_GUARDED_BY(x)
#define MESH_REQUIRES(...)
#define MESH_ACQUIRE(...)
#define MESH_RELEASE(...)
#define MESH_TRY_ACQUIRE(...)
#define MESH_SCOPED_CAPABILITY
#define MESH_NO_THREAD_SAFETY_ANALYSIS
#endif

namespace mesh {

class MESH_CAPABILITY("mutex") Mutex {
 public:
  constexpr Mutex() = default;
  void lock() MESH_ACQUIRE() {
    int expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return;
    lockSlow();
  }
  bool tryLock() MESH_TRY_ACQUIRE(true) {
    int expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire);
  }
  void unlock() MESH_RELEASE() {
    if (state_.exchange(0, std::memory_order_release) == 2) {
      os::futexWakeAll(reinterpret_cast<const int*>(&state_));
    }
  }
  // For code that must never block (a signal handler nested in the allocator): another thread
  // holding the lock lets go within microseconds, the interrupted thread itself never will, so
  // try a bounded number of times and then give up.
  bool tryLockBounded() MESH_TRY_ACQUIRE(true) {
    for (int tries = 1; !tryLock(); ++tries) {
      if (tries == 256) return false;
      if (tries % 64 == 0) os::yieldSignalSafe();
      cpu::relax();
    }
    return true;
  }
  // Only in a fork child, where the thread that held the lock no longer exists.
  void resetAfterFork() { state_.store(0, std::memory_order_relaxed); }

 private:
  void lockSlow() {
    for (int spin = 0; spin < 100; ++spin) {
      int expected = 0;
      if (state_.load(std::memory_order_relaxed) == 0 &&
          state_.compare_exchange_weak(expected, 1, std::memory_order_acquire)) {
        return;
      }
      cpu::relax();
    }
    while (state_.exchange(2, std::memory_order_acquire) != 0) {
      os::futexWait(reinterpret_cast<const int*>(&state_), 2);
    }
  }
  std::atomic<int> state_{0};
};

class MESH_SCOPED_CAPABILITY LockGuard {
 public:
  explicit LockGuard(Mutex& m) MESH_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~LockGuard() MESH_RELEASE() { m_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Mutex& m_;
};

}  // namespace mesh
