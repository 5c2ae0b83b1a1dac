#include "miniheap/miniheap.h"

#include "common/log.h"
#include "platform/cpu.h"
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

// Relisting a span counts its live bits on every batched free (cpu::countBits4: popcnt where
// the CPU has it, whatever the build's baseline).
uint32_t MiniHeap::liveCount() const {
  static_assert(sizeof(live_) / sizeof(live_[0]) == 4);
  return cpu::countBits4(live_);
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
