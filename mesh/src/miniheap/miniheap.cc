#include "miniheap/miniheap.h"

#include "common/log.h"
#include "platform/os.h"

namespace mesh {

static_assert(sizeof(MiniHeap) <= 192, "keep span metadata within three cache lines");

MiniHeap::MiniHeap(int cls, size_t page, char* start)
    : spanStart_(start),
      spanPage_(page),
      divMagic_(sizeClass(cls).magic),
      pages_(sizeClass(cls).pages),
      objSize_(sizeClass(cls).size),
      objects_(sizeClass(cls).objects),
      cls_(static_cast<uint8_t>(cls)),
      classLine_(static_cast<uint16_t>(cls * kClassLineBytes)) {}

MiniHeap::MiniHeap(size_t page, size_t pages, char* start, bool zeroed)
    : spanStart_(start),
      spanPage_(page),
      divMagic_(0),
      pages_(static_cast<uint32_t>(pages)),
      objSize_(0),
      objects_(1),
      cls_(kLargeClass),
      zeroed_(zeroed),
      classLine_(0) {
  setLive(0);
}

// Relisting a span counts its live bits on every batched free. A baseline x86-64 build has no
// popcnt instruction and the compiler's fallback is a call into libgcc, so count in registers.
// (No ifunc dispatch: sanitizer runtimes crash on ifunc resolvers that run before them.)
static uint32_t countBits(uint64_t x) {
#if defined(__POPCNT__)
  return static_cast<uint32_t>(__builtin_popcountll(x));
#else
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<uint32_t>((x * 0x0101010101010101ull) >> 56);
#endif
}

uint32_t MiniHeap::liveCount() const {
  uint32_t n = 0;
  for (const auto& w : live_) n += countBits(w.load(std::memory_order_relaxed));
  return n;
}

bool MiniHeap::hasRemote() const {
  for (const auto& w : remote_) {
    if (w.load(std::memory_order_relaxed) != 0) return true;
  }
  return false;
}

void MiniHeap::reportDoubleFree(const void* ptr) { fatalPointer("double free of", ptr); }

void MiniHeap::reportDoubleFree(uint32_t slot) const { fatalPointer("double free of", slotAddress(slot)); }

}  // namespace mesh
