// The CPU-specific bits of the library, each with a portable fallback (the rest of the code is
// plain C++ and builds on any 64-bit Linux target).
#pragma once

#include <atomic>
#include <cstdint>

#if defined(__x86_64__) && !defined(__POPCNT__)
#include <cpuid.h>
#endif

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

// Counts the set bits of four words (a span's bitmap). A baseline x86-64 build has no popcnt
// instruction and the compiler's fallback is about 20 instructions a word, so where the CPU has
// one (every x86-64 CPU since about 2008) it is used through a function built for it, chosen by
// a flag read once from cpuid. No ifunc: sanitizer runtimes crash on ifunc resolvers that run
// before them.
// Works on a live bitmap (atomic words, read relaxed) or on a copy of one (plain words).
inline uint64_t wordOf(const std::atomic<uint64_t>& w) { return w.load(std::memory_order_relaxed); }
inline uint64_t wordOf(uint64_t w) { return w; }

#if defined(__x86_64__) && !defined(__POPCNT__)
namespace detail {
inline std::atomic<int> g_popcnt{-1};  // -1 not asked yet, then 0 or 1
template <typename Word>
__attribute__((target("popcnt"))) inline uint32_t countBits4Popcnt(const Word* w) {
  uint64_t n = 0;
  for (int i = 0; i < 4; ++i) n += static_cast<uint64_t>(__builtin_popcountll(wordOf(w[i])));
  return static_cast<uint32_t>(n);
}
inline bool askPopcnt() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  bool has = __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_POPCNT) != 0;
  g_popcnt.store(has ? 1 : 0, std::memory_order_relaxed);
  return has;
}
}  // namespace detail
#endif

inline uint32_t countBitsSoft(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<uint32_t>((x * 0x0101010101010101ull) >> 56);
}

template <typename Word>
inline uint32_t countBits4(const Word* w) {
#if defined(__x86_64__) && !defined(__POPCNT__)
  int has = detail::g_popcnt.load(std::memory_order_relaxed);
  if (has > 0 || (has < 0 && detail::askPopcnt())) return detail::countBits4Popcnt(w);
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n += countBitsSoft(wordOf(w[i]));
  return n;
#else
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n += static_cast<uint32_t>(__builtin_popcountll(wordOf(w[i])));
  return n;
#endif
}

}  // namespace mesh::cpu
