// MiniHeap: the metadata of one span (a run of pages holding objects of one size class) or of
// one large object.
//
// Glossary
//   page      4 KiB of the arena.
//   span      1..16 contiguous pages holding `objects` slots of one size class at fixed offsets.
//   miniheap  a span's metadata: class, location, a 256-bit bitmap of live slots.
//   attached  a span owned by one thread heap, which allocates from it without locks.
//   mesh      two spans with disjoint bitmaps sharing one set of physical pages.
//   file-backed  a span whose pages were moved into the arena's memfd (at its own offset) to take
//             part in a mesh; every other span is private anonymous memory.
//
// Bitmap protocol (no lock and no atomic read-modify-write on the owner's fast path):
//   live[]    bit set = slot handed to the user. Written only by the span's single writer: the
//             owning thread while attached, or the holder of the class lock while detached.
//             Writers use relaxed load+store; others may read it.
//   remote[]  frees by any thread that is not the single writer, with fetch_or. The single writer
//             folds them into live[] (foldRemote). A bit freed remotely twice, or freed remotely
//             while already clear in live[], is a double free.
//   owner     the attached thread heap, or null. Changed only under the class lock. A remote
//             freer that sees null after its fetch_or queues the span for its class so the global
//             heap folds it (Dekker-style: detach stores owner then folds; a freer fetch_ors then
//             loads owner; seq_cst on both sides means at least one of them sees the other).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/compiler.h"
#include "miniheap/size_classes.h"

namespace mesh {

inline constexpr uint8_t kLargeClass = 0xff;
// A physical span backs at most 1 + kMaxExtraSpans virtual spans (its own and those meshed in).
inline constexpr uint32_t kMaxExtraSpans = 6;
inline constexpr uint8_t kNoBin = 0xff;

class alignas(64) MiniHeap {
 public:
  // Small span of class cls at arena page `page`, whose first byte is at `start`.
  MiniHeap(int cls, size_t page, char* start);
  // Large object of `pages` pages at arena page `page`.
  MiniHeap(size_t page, size_t pages, char* start, bool zeroed);

  bool isLarge() const { return cls_ == kLargeClass; }
  int sizeClassIndex() const { return cls_; }
  // The class index times kClassLineBytes: a per-class table of one cache line per class (the
  // thread cache) is indexed with it directly. Small spans only. A sparse span answers
  // kSparseLine instead, one line past the last class, where a thread cache keeps a stack that
  // is always full: the free fast path then takes the slow path without a test of its own.
  size_t classLineOffset() const { return classLine_.load(std::memory_order_relaxed); }
  // Sparse: a detached span so empty that its objects should not be reused. Frees of its
  // objects skip the freed stacks (the slow path frees them to the span, see
  // Frontend::freeBeyondCache), so malloc does not put new objects back into it and it empties.
  // Set by the class lock holder when it lists the span (GlobalHeap::relistLocked), cleared
  // when a thread attaches it; read without a lock (a stale reading only picks the other of two
  // correct free paths).
  static constexpr uint16_t kSparseLine = kNumClasses * kClassLineBytes;
  bool sparse() const { return classLine_.load(std::memory_order_relaxed) == kSparseLine; }
  void setSparse(bool on) {
    classLine_.store(on ? kSparseLine : static_cast<uint16_t>(cls_ * kClassLineBytes), std::memory_order_relaxed);
  }
  size_t spanPage() const { return spanPage_; }
  char* spanStart() const { return spanStart_; }
  char* slotAddress(uint32_t slot) const { return spanStart_ + static_cast<size_t>(slot) * objSize_; }
  size_t pages() const { return pages_; }
  uint32_t objectSize() const { return objSize_; }
  uint32_t objectCount() const { return objects_; }
  bool zeroed() const { return zeroed_; }

  // Slot index for byte offset `off` (< 2^32) from the span start; returns false when off is not
  // the start of a slot (an interior or tail pointer), and always for a large object. One
  // multiply (see SizeClass::magic).
  bool slotForOffset(size_t off, uint32_t* slot) const {
    size_t idx;
    bool start = slotStartForOffset(off, &idx);
    *slot = static_cast<uint32_t>(idx);
    return start && idx < objects_;
  }
  // slotForOffset without the bound: for an offset inside the span (below pages * 4096) that
  // starts a slot, *slot is at most objects, and never above 255 (see slotBoundInBitmap in
  // size_classes.h), so a caller that then requires isLive(*slot) needs no other bound: a tail
  // offset gives slot == objects, whose bit is never set. (The free fast path.)
  bool slotStartForOffset(size_t off, size_t* slot) const {
    unsigned __int128 product = static_cast<unsigned __int128>(divMagic_) * off;
    *slot = static_cast<size_t>(product >> 64);
    return static_cast<uint64_t>(product) < divMagic_;
  }

  // --- bitmap: single-writer operations --------------------------------------------------
  // The word index is masked: the free fast path reads miniheaps without a lock, and a span
  // recycled under a misused pointer can give a slot of up to 4095; that reads some other bit
  // of this bitmap (the locked batch rechecks) instead of memory past it.
  bool isLive(size_t slot) const {
    return (wordAt(live_, (slot >> 3) & 0x18).load(std::memory_order_relaxed) >> (slot & 63)) & 1;
  }
  void setLive(uint32_t slot) {
    auto& w = live_[slot >> 6];
    w.store(w.load(std::memory_order_relaxed) | (1ull << (slot & 63)), std::memory_order_relaxed);
  }
  void clearLive(uint32_t slot) {
    auto& w = live_[slot >> 6];
    w.store(w.load(std::memory_order_relaxed) & ~(1ull << (slot & 63)), std::memory_order_relaxed);
  }
  uint64_t liveWord(int i) const { return live_[i].load(std::memory_order_relaxed); }
  uint32_t liveCount() const;
  bool isEmpty() const { return liveCount() == 0; }
  bool isFull() const { return liveCount() == objects_; }

  // Folds remote frees into live[]; calls onFreed(slot) for each slot freed. Aborts on a double
  // free. Returns the number of slots freed. Single writer only.
  template <typename F>
  uint32_t foldRemote(F&& onFreed);
  uint32_t foldRemote() {
    return foldRemote([](uint32_t) {});
  }
  bool hasRemote() const;
  // Whether slot was freed remotely and not folded yet (a free of it now is a double free).
  bool isRemoteFreed(uint32_t slot) const {
    return (remote_[slot >> 6].load(std::memory_order_relaxed) >> (slot & 63)) & 1;
  }
  // Whether slot is live and not freed remotely: what a free expects. Masked like isLive.
  bool isLiveUnfreed(size_t slot) const {
    size_t byte = (slot >> 3) & 0x18;  // the word's byte offset (words 0..3), as one mask
    uint64_t live = wordAt(live_, byte).load(std::memory_order_relaxed);
    uint64_t remote = wordAt(remote_, byte).load(std::memory_order_relaxed);
    return ((live & ~remote) >> (slot & 63)) & 1;
  }

  // --- frees by a thread that is not the single writer ---------------------------------------
  // Records the free of `slot` (ptr for the error message). Aborts on a detected double free.
  void freeRemote(uint32_t slot, const void* ptr) {
    uint64_t bit = 1ull << (slot & 63);
    // A slot that is not live was already freed (and folded): a double free.
    if (MESH_UNLIKELY((live_[slot >> 6].load(std::memory_order_relaxed) & bit) == 0)) reportDoubleFree(ptr);
    uint64_t old = remote_[slot >> 6].fetch_or(bit, std::memory_order_seq_cst);
    if (MESH_UNLIKELY((old & bit) != 0)) reportDoubleFree(ptr);
  }
  // A large block's one slot is 0: its free is recorded like a remote free of slot 0, whoever
  // frees it (the block is then kept by a thread cache, or returned). Aborts on a double free.
  void markLargeFreed(const void* ptr) { freeRemote(0, ptr); }
  bool largeFreed() const { return isRemoteFreed(0); }
  // A large block whose free was recorded (a thread cache kept it) is handed out again.
  void reuseLarge() { remote_[0].store(0, std::memory_order_relaxed); }

  // --- ownership -------------------------------------------------------------------------------
  void* owner() const { return owner_.load(std::memory_order_relaxed); }
  void* ownerSeqCst() const { return owner_.load(std::memory_order_seq_cst); }
  void setOwner(void* heap) {
    if (heap != nullptr) lastOwner_ = heap;
    owner_.store(heap, std::memory_order_seq_cst);
  }
  // A mesh runs on this detached span without the class lock (SpanLists::holdForMeshLocked): its
  // owner is then an address no thread heap has, so every free of its objects takes the remote
  // path, and lastOwner is kept.
  void holdForMesh() { owner_.store(&meshHolder_, std::memory_order_seq_cst); }
  bool heldForMesh() const { return owner() == &meshHolder_; }
  // The thread heap the span was last attached to (nullptr: never attached). Kept after the
  // detach, so MESH_SAME_THREAD_MESHING can pair spans of one thread. Class lock.
  void* lastOwner() const { return lastOwner_; }

  // --- meshing: virtual spans that alias this span's physical pages (arena page indices) ----
  uint32_t extraSpanCount() const { return extraCount_; }
  uint32_t extraSpan(uint32_t i) const { return extraSpans_[i]; }
  bool addExtraSpan(size_t page) {
    if (extraCount_ == kMaxExtraSpans) return false;
    extraSpans_[extraCount_++] = static_cast<uint32_t>(page);
    return true;
  }
  // Whether this span's own pages are in the memfd (always so once it has extra spans).
  // Changed only under the class lock, with the span detached; the mesher of another class may
  // read it as a hint (relaxed).
  bool fileBacked() const { return fileBacked_.load(std::memory_order_relaxed); }
  void setFileBacked(bool v) { fileBacked_.store(v, std::memory_order_relaxed); }
  // Merges src's live bits into ours (the caller checked they are disjoint).
  void absorbLive(const MiniHeap& src) {
    for (int i = 0; i < 4; ++i) {
      live_[i].store(live_[i].load(std::memory_order_relaxed) | src.live_[i].load(std::memory_order_relaxed),
                     std::memory_order_relaxed);
    }
  }
  // Takes src's remote frees (arrived while it was being meshed into us) as our own.
  void absorbRemote(MiniHeap& src) {
    for (int i = 0; i < 4; ++i) {
      uint64_t r = src.remote_[i].exchange(0, std::memory_order_acq_rel);
      if (r != 0) remote_[i].fetch_or(r, std::memory_order_acq_rel);
    }
  }
  void copyLiveBits(uint64_t out[4]) const {
    for (int i = 0; i < 4; ++i) out[i] = live_[i].load(std::memory_order_relaxed);
  }

  // --- pins: a remote free holds one from its first to its last touch of this miniheap, and
  // the span is neither recycled nor meshed away meanwhile (see GlobalHeap::freeNonOwner).
  void pin() { pending_.fetch_add(1, std::memory_order_seq_cst); }
  void unpin() { pending_.fetch_sub(1, std::memory_order_release); }
  bool pinned() const { return pending_.load(std::memory_order_acquire) != 0; }

  // --- queue of spans with pending remote frees (per class, lock-free push) -----------------
  // True when the caller must push this span (it was not queued yet).
  bool markQueued() { return !queued_.exchange(true, std::memory_order_acq_rel); }
  void clearQueued() { queued_.store(false, std::memory_order_seq_cst); }
  MiniHeap* nextQueued = nullptr;

  // --- global heap lists (class lock) --------------------------------------------------------
  MiniHeap* prev = nullptr;
  MiniHeap* next = nullptr;
  uint8_t bin = kNoBin;
  uint8_t lane = 0;  // SpanLists lane: that of the thread it was last attached to
  // Dead miniheaps (recycled) must be ignored by a queue drain that still holds a pointer.
  bool alive = true;
  // Free slots this span adds to its class's meshable-free count while listed (GlobalHeap's
  // pacing input; 0 for a span meshing would skip).
  uint16_t listedFree = 0;

 private:
  [[noreturn]] void reportDoubleFree(uint32_t slot) const;
  [[noreturn]] MESH_SLOW_PATH static void reportDoubleFree(const void* ptr);
  static const std::atomic<uint64_t>& wordAt(const std::atomic<uint64_t>* words, size_t byte) {
    return *reinterpret_cast<const std::atomic<uint64_t>*>(reinterpret_cast<const char*>(words) + byte);
  }

  // Cache line 1 (with the list links above): where the span is, and its history.
  char* spanStart_;
  size_t spanPage_;
  void* lastOwner_ = nullptr;
  static inline char meshHolder_ = 0;
  // Cache line 2: everything the free fast path reads but the remote bits (slot division, class,
  // live bits), and what the owner writes.
  alignas(64) uint64_t divMagic_;  // SizeClass::magic; 0 for a large object (no offset is a slot)
  uint32_t pages_;
  uint32_t objSize_;
  uint32_t objects_;
  uint8_t cls_;
  bool zeroed_ = false;
  std::atomic<uint16_t> classLine_;  // cls_ * kClassLineBytes, kSparseLine or 0 (large)
  std::atomic<void*> owner_{nullptr};
  std::atomic<uint64_t> live_[4] = {};
  // Cache line 3: what other threads write (remote frees, the remote-free queue flag, pins) or
  // the class lock holder changes while the span is detached.
  alignas(64) std::atomic<uint64_t> remote_[4] = {};
  std::atomic<uint32_t> pending_{0};
  uint8_t extraCount_ = 0;
  std::atomic<bool> queued_{false};
  std::atomic<bool> fileBacked_{false};
  uint32_t extraSpans_[kMaxExtraSpans] = {};
};

template <typename F>
uint32_t MiniHeap::foldRemote(F&& onFreed) {
  uint32_t freed = 0;
  for (int i = 0; i < 4; ++i) {
    if (remote_[i].load(std::memory_order_relaxed) == 0) continue;
    uint64_t r = remote_[i].exchange(0, std::memory_order_acq_rel);
    uint64_t live = live_[i].load(std::memory_order_relaxed);
    if ((r & ~live) != 0) reportDoubleFree(i * 64 + __builtin_ctzll(r & ~live));
    live_[i].store(live & ~r, std::memory_order_relaxed);
    while (r != 0) {
      onFreed(static_cast<uint32_t>(i * 64 + __builtin_ctzll(r)));
      r &= r - 1;
      ++freed;
    }
  }
  return freed;
}

}  // namespace mesh
