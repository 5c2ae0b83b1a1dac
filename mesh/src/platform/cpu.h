// The CPU-specific bits of the library, each with a portable fallback (the rest of the code is
// plain C++ and builds on any 64-bit Linux target).
#pragma once

#include <atomic>
#include <cstdint>

namespace mesh::cpu {

// Tells the CPU the caller is spinning (x86 `pause`, arm64 `yield`): lets a sibling hardware
// thread run and saves power; elsewhere just a compiler barrier.
inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield" ::: "memory");
#else
  __asm__ __volatile__("" ::: "memory");
#endif
}

// Adds delta to a 64-bit counter that only the calling thread writes (others only read it): no
// atomic read-modify-write. On x86-64 one add-to-memory instruction, where a relaxed load and
// store are three; an aligned 8-byte add is never seen torn. Elsewhere (and under
// ThreadSanitizer, which must see the accesses) a relaxed load and store.
template <typename T, typename D>
inline void addOwned(std::atomic<T>& counter, D delta) {
  static_assert(sizeof(std::atomic<T>) == sizeof(T) && sizeof(T) == 8);
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  __asm__("addq %1, %0" : "+m"(*reinterpret_cast<T*>(&counter)) : "er"(static_cast<int64_t>(delta)));
#else
  counter.store(counter.load(std::memory_order_relaxed) + static_cast<T>(delta), std::memory_order_relaxed);
#endif
}

}  // namespace mesh::cpu
