#include "model/alloc_model.h"

#include <cerrno>
#include <cstdarg>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>

#include "harness/pattern.h"

namespace mesh::model {
namespace {

constexpr size_t kNoMismatch = std::numeric_limits<size_t>::max();

// The pattern seed of object id (harness/pattern.h): one SplitMix64 step from the id, so that
// consecutive ids get unrelated patterns.
uint64_t patternSeed(uint64_t id) { return harness::mix64(id + harness::kGolden); }

std::string hexPtr(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

size_t baseAlignment(size_t n) { return n >= 16 ? 16 : 8; }

bool isAligned(const void* p, size_t align) {
  return (reinterpret_cast<uintptr_t>(p) & (align - 1)) == 0;
}

}  // namespace

void fillPattern(char* p, size_t from, size_t to, uint64_t id) {
  harness::fill_pattern(p, from, to, patternSeed(id));
}

size_t findPatternMismatch(const char* p, size_t from, size_t to, uint64_t id) {
  size_t bad = harness::find_pattern_mismatch(p, from, to, patternSeed(id));
  return bad == to ? kNoMismatch : bad;
}

namespace {

// The bytes of an object that the model writes and checks: all of them while the usable size is
// at most kDenseBytes; beyond that, the first and last kEdgeBytes of every 4 KiB block of the
// object, and above kSparseBytes only of every 16th block and the last one. Page-level damage
// (a wrong or lost mapping, a zeroed page, a short copy) still shows, without touching every
// page of multi-MiB objects (page faults on the memfd dominate the cost otherwise).
constexpr size_t kDenseBytes = size_t{64} << 10;
constexpr size_t kSparseBytes = size_t{1} << 20;
constexpr size_t kBlock = 4096;
constexpr size_t kEdgeBytes = 128;

// Calls f(begin, end) for each checked range inside [from, to); stops when f returns false.
template <typename F>
void forEachCheckedRange(size_t from, size_t to, size_t usable, F&& f) {
  if (usable <= kDenseBytes) {
    if (from < to) f(from, to);
    return;
  }
  size_t stride = usable > kSparseBytes ? 16 * kBlock : kBlock;
  size_t lastBlock = (usable - 1) / kBlock * kBlock;
  for (size_t block = from / stride * stride; block < to;) {
    size_t ranges[2][2] = {{block, block + kEdgeBytes}, {block + kBlock - kEdgeBytes, block + kBlock}};
    for (auto& r : ranges) {
      size_t b = r[0] > from ? r[0] : from;
      size_t e = r[1] < to ? r[1] : to;
      if (b < e && !f(b, e)) return;
    }
    if (block == lastBlock) break;
    block = block + stride < lastBlock ? block + stride : lastBlock;
  }
}

void writeContents(char* p, size_t from, size_t to, size_t usable, uint64_t id) {
  forEachCheckedRange(from, to, usable, [&](size_t b, size_t e) {
    fillPattern(p, b, e, id);
    return true;
  });
}

size_t findContentMismatch(const char* p, size_t from, size_t to, size_t usable, uint64_t id) {
  size_t bad = kNoMismatch;
  forEachCheckedRange(from, to, usable, [&](size_t b, size_t e) {
    bad = findPatternMismatch(p, b, e, id);
    return bad == kNoMismatch;
  });
  return bad;
}

size_t findNonZero(const char* p, size_t n, size_t usable) {
  size_t bad = kNoMismatch;
  forEachCheckedRange(0, n, usable, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      if (p[i] != 0) {
        bad = i;
        return false;
      }
    }
    return true;
  });
  return bad;
}

}  // namespace

Model::Model(Executor& ex, Limits limits) : ex_(ex), limits_(limits) {}

Model::~Model() {
  if (failed()) return;  // leak: the heap is not trustworthy any more
  while (!live_.empty()) {
    ex_.release(live_.back().p);
    removeAt(live_.size() - 1);
  }
}

std::string Model::describeObject(const Object& o) const {
  return format("object id %" PRIu64 " at %s (%zu bytes requested, %zu usable)", o.id,
                hexPtr(o.p).c_str(), o.requested, o.usable);
}

std::string Model::checkObject(const Object& o, size_t bytes, const char* when) const {
  size_t bad = findContentMismatch(o.p, 0, bytes, o.usable, o.id);
  if (bad == kNoMismatch) return "";
  return describeObject(o) + format(": byte %zu is 0x%02x, expected 0x%02x %s", bad,
                                    static_cast<uint8_t>(o.p[bad]),
                                    harness::pattern_byte(patternSeed(o.id), bad), when);
}

std::string Model::overlapWith(uintptr_t begin, uintptr_t end) const {
  auto next = ranges_.lower_bound(begin);
  if (next != ranges_.end() && next->first < end) {
    return format("[%#" PRIxPTR ", %#" PRIxPTR ") overlaps the live object at %#" PRIxPTR, begin,
                  end, next->first);
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->second.end > begin) {
      return format("[%#" PRIxPTR ", %#" PRIxPTR ") overlaps the live object [%#" PRIxPTR
                    ", %#" PRIxPTR ")",
                    begin, end, prev->first, prev->second.end);
    }
  }
  return "";
}

std::string Model::checkNeighbours(uintptr_t addr, const char* when) const {
  auto checkRange = [&](std::map<uintptr_t, Range>::const_iterator r) -> std::string {
    const char* p = reinterpret_cast<const char*>(r->first);
    size_t bytes = r->second.end - r->first;
    size_t bad = findContentMismatch(p, 0, bytes, bytes, r->second.id);
    if (bad == kNoMismatch) return "";
    return format("neighbour object id %" PRIu64 " at %p differs at byte %zu %s", r->second.id,
                  static_cast<const void*>(p), bad, when);
  };
  // The live objects just below and just above addr (addr itself may or may not be live).
  auto next = ranges_.lower_bound(addr);
  if (next != ranges_.begin()) {
    std::string e = checkRange(std::prev(next));
    if (!e.empty()) return e;
  }
  if (next != ranges_.end() && next->first == addr) ++next;
  return next != ranges_.end() ? checkRange(next) : "";
}

bool Model::fits(size_t n) const {
  return live_.size() < limits_.maxLiveObjects && n <= limits_.maxLiveBytes - liveBytes_;
}

void Model::insert(const Object& o) {
  live_.push_back(o);
  ranges_[reinterpret_cast<uintptr_t>(o.p)] = {reinterpret_cast<uintptr_t>(o.p) + o.usable, o.id};
  liveBytes_ += o.requested;
  if (live_.size() > stats_.maxLiveObjects) stats_.maxLiveObjects = live_.size();
  if (liveBytes_ > stats_.maxLiveBytes) stats_.maxLiveBytes = liveBytes_;
}

void Model::removeAt(size_t index) {
  ranges_.erase(reinterpret_cast<uintptr_t>(live_[index].p));
  liveBytes_ -= live_[index].requested;
  live_[index] = live_.back();
  live_.pop_back();
}

// Checks a fresh allocation and enters it into the model. prefilledId != 0: the object was
// filled with that id's pattern already (by the other thread); otherwise it gets a new id and is
// filled here, after checking that the first n bytes are zero when `zeroed` is asked.
std::string Model::admit(char* p, size_t n, size_t minAlign, const char* what, bool zeroed,
                         uint64_t prefilledId) {
  if (p == nullptr) {
    if (ex_.mayRunOutOfMemory(n)) {
      ++stats_.outOfMemory;
      return "";
    }
    return format("%s of %zu bytes returned NULL", what, n);
  }
  if (!isAligned(p, minAlign)) {
    return format("%s of %zu bytes returned %s, not aligned to %zu", what, n, hexPtr(p).c_str(),
                  minAlign);
  }
  size_t usable = ex_.usableSize(p);
  if (usable < n) {
    return format("%s of %zu bytes: usable size %zu is smaller", what, n, usable);
  }
  uintptr_t begin = reinterpret_cast<uintptr_t>(p);
  std::string overlap = overlapWith(begin, begin + (usable > 0 ? usable : 1));
  if (!overlap.empty()) return format("%s of %zu bytes: ", what, n) + overlap;
  Object o{p, n, usable, prefilledId != 0 ? prefilledId : nextId_++};
  if (prefilledId != 0) {
    std::string e = checkObject(o, usable, "as written by the other thread");
    if (!e.empty()) return e;
  } else {
    if (zeroed) {
      size_t bad = findNonZero(p, n, usable);
      if (bad != kNoMismatch) return format("%s of %zu bytes: byte %zu is not zero", what, n, bad);
    }
    writeContents(p, 0, usable, usable, o.id);
  }
  insert(o);
  return "";
}

std::string Model::allocateOne(OpKind kind, size_t n, size_t align, uint8_t arg) {
  if (!fits(n)) {
    ++stats_.skipped;
    return "";
  }
  switch (kind) {
    case OpKind::kAligned: {
      char* p = static_cast<char*>(ex_.allocateAligned(n, align));
      size_t minAlign = align > baseAlignment(n) ? align : baseAlignment(n);
      std::string e = admit(p, n, minAlign, "aligned allocation", false, 0);
      if (!e.empty() || p == nullptr) return e;
      // Small aligned requests come from a size class that is a multiple of the alignment.
      if (n <= 16384 && align <= 4096 && live_.back().usable > 16384) {
        return format("aligned allocation of %zu bytes (align %zu) took a large block of %zu", n,
                      align, live_.back().usable);
      }
      return "";
    }
    case OpKind::kCalloc: {
      size_t count = 1 + arg % 8;
      size_t elem = n / count;
      char* p = static_cast<char*>(ex_.allocateZeroed(count, elem));
      return admit(p, count * elem, baseAlignment(count * elem), "calloc", true, 0);
    }
    case OpKind::kRealloc: {  // realloc(NULL, n)
      char* p = static_cast<char*>(ex_.reallocate(nullptr, n));
      if (n == 0 && p == nullptr) return "";  // realloc(NULL, 0) may return NULL
      return admit(p, n, baseAlignment(n), "realloc(NULL)", false, 0);
    }
    default: {
      char* p = static_cast<char*>(ex_.allocate(n));
      return admit(p, n, baseAlignment(n), "malloc", false, 0);
    }
  }
}

std::string Model::reallocOne(size_t index, size_t n) {
  Object o = live_[index];
  std::string e = checkObject(o, o.usable, "before realloc");
  if (!e.empty()) return e;
  if (n == 0) {
    void* q = ex_.reallocate(o.p, 0);
    removeAt(index);
    if (q != nullptr) return format("realloc(%s, 0) returned %s, not NULL", hexPtr(o.p).c_str(),
                                    hexPtr(q).c_str());
    return "";
  }
  if (n > o.requested && !fits(n - o.requested)) {
    ++stats_.skipped;
    return "";
  }
  char* q = static_cast<char*>(ex_.reallocate(o.p, n));
  if (q == nullptr) {
    if (!ex_.mayRunOutOfMemory(n)) return format("realloc to %zu bytes returned NULL", n);
    ++stats_.outOfMemory;
    return checkObject(o, o.usable, "after a failed realloc");
  }
  ranges_.erase(reinterpret_cast<uintptr_t>(o.p));
  liveBytes_ -= o.requested;
  live_[index] = live_.back();
  live_.pop_back();
  if (!isAligned(q, baseAlignment(n))) {
    return format("realloc to %zu bytes returned %s, misaligned", n, hexPtr(q).c_str());
  }
  size_t usable = ex_.usableSize(q);
  if (usable < n) return format("realloc to %zu bytes: usable size %zu is smaller", n, usable);
  uintptr_t begin = reinterpret_cast<uintptr_t>(q);
  e = overlapWith(begin, begin + usable);
  if (!e.empty()) return "realloc: " + e;
  size_t kept = n < o.requested ? n : o.requested;
  // The kept bytes are checked where the old object had them written (its usable size decides
  // which bytes that is), then the whole new object is written for its own usable size.
  Object asWritten{q, n, o.usable, o.id};
  e = checkObject(asWritten, kept, q == o.p ? "after an in-place realloc" : "after realloc moved it");
  if (!e.empty()) return e;
  writeContents(q, 0, usable, usable, o.id);
  insert(Object{q, n, usable, o.id});
  return checkNeighbours(begin, "after a neighbour's realloc");
}

std::string Model::freeOne(size_t index, const char* what) {
  std::string e = checkObject(live_[index], live_[index].usable, what);
  if (!e.empty()) return e;
  ex_.release(live_[index].p);
  removeAt(index);
  return "";
}

std::string Model::handOff(size_t index) {
  Object o = live_[index];
  std::string e = checkObject(o, o.usable, "before hand-off");
  if (!e.empty()) return e;
  removeAt(index);
  size_t bad = kNoMismatch;
  ex_.onOtherThread([&] {
    bad = findContentMismatch(o.p, 0, o.usable, o.usable, o.id);
    if (bad == kNoMismatch) ex_.release(o.p);
  });
  if (bad != kNoMismatch) {
    return describeObject(o) + format(": byte %zu differs when read by the other thread", bad);
  }
  return checkNeighbours(reinterpret_cast<uintptr_t>(o.p), "after a hand-off freed its neighbour");
}

std::string Model::remoteAlloc(size_t n) {
  if (!fits(n)) {
    ++stats_.skipped;
    return "";
  }
  uint64_t id = nextId_++;
  char* p = nullptr;
  ex_.onOtherThread([&] {
    p = static_cast<char*>(ex_.allocate(n));
    if (p == nullptr) return;
    size_t usable = ex_.usableSize(p);
    writeContents(p, 0, usable, usable, id);
  });
  return admit(p, n, baseAlignment(n), "malloc on the other thread", false, id);
}

std::string Model::oversize(uint8_t variant, uint16_t target) {
  constexpr size_t kMax = std::numeric_limits<size_t>::max();
  const size_t ptrdiffMax = static_cast<size_t>(std::numeric_limits<ptrdiff_t>::max());
  void* p = nullptr;
  const char* what = "";
  Object* o = live_.empty() ? nullptr : &live_[target % live_.size()];
  errno = 0;
  switch (variant % 7) {
    case 0: what = "malloc(SIZE_MAX)"; p = ex_.allocate(kMax); break;
    case 1: what = "malloc(SIZE_MAX - 4095)"; p = ex_.allocate(kMax - 4095); break;
    case 2: what = "malloc(PTRDIFF_MAX + 1)"; p = ex_.allocate(ptrdiffMax + 1); break;
    case 3: what = "malloc(1 TiB)"; p = ex_.allocate(size_t{1} << 40); break;
    case 4: what = "aligned(64 KiB, SIZE_MAX - 100)"; p = ex_.allocateAligned(kMax - 100, 65536); break;
    case 5: what = "calloc(SIZE_MAX / 2 + 1, 2)"; p = ex_.allocateZeroed(kMax / 2 + 1, 2); break;
    default:
      what = "realloc(p, SIZE_MAX - 8)";
      p = ex_.reallocate(o != nullptr ? o->p : nullptr, kMax - 8);
      break;
  }
  int err = errno;
  if (p != nullptr) return format("%s returned %s instead of NULL", what, hexPtr(p).c_str());
  if (ex_.setsErrno() && err != ENOMEM) return format("%s: errno %d, expected ENOMEM", what, err);
  if (variant % 7 == 6 && o != nullptr) return checkObject(*o, o->usable, "after a failed realloc");
  return "";
}

std::string Model::freeEvery(uint8_t arg, uint16_t target) {
  size_t stride = 2 + arg % 15;
  size_t offset = target % stride;
  if (live_.empty()) {
    ++stats_.skipped;
    return "";
  }
  // Highest index first: swap-remove then only moves objects that are not selected.
  size_t last = live_.size() - 1;
  size_t i = last - (last % stride) + offset;
  if (i > last) {
    if (i < stride) return "";
    i -= stride;
  }
  for (;; i -= stride) {
    std::string e = freeOne(i, "before free");
    if (!e.empty()) return e;
    if (i < stride) break;
  }
  return "";
}

std::string Model::compact(bool detachFirst) {
  stats_.meshes += ex_.compact(detachFirst);
  std::string e = checkAll();
  return e.empty() ? "" : e + " (after compaction)";
}

std::string Model::applyChecked(const Op& op) {
  size_t n = op.size;
  switch (op.kind) {
    case OpKind::kMalloc:
    case OpKind::kCalloc:
      return allocateOne(op.kind, n, 16, op.arg);
    case OpKind::kAligned:
      return allocateOne(op.kind, n, size_t{1} << op.alignLog2, op.arg);
    case OpKind::kRealloc:
      if (live_.empty()) return allocateOne(op.kind, n, 16, 0);
      return reallocOne(op.target % live_.size(), n);
    case OpKind::kFree:
    case OpKind::kUsableSize:
    case OpKind::kHandOff:
      break;
    case OpKind::kCompact:
      return compact((op.arg & 1) != 0);
    case OpKind::kRemoteAlloc:
      return remoteAlloc(n);
    case OpKind::kRetireThread:
      ex_.retireOtherThread();
      return "";
    case OpKind::kOversize:
      return oversize(op.arg, op.target);
    case OpKind::kAllocMany:
      for (int i = 0, count = 1 + op.arg % 128; i < count; ++i) {
        std::string e = allocateOne(OpKind::kMalloc, n, 16, 0);
        if (!e.empty()) return e;
      }
      return "";
    case OpKind::kFreeEvery:
      return freeEvery(op.arg, op.target);
    case OpKind::kCount:
      return "";
  }
  // Operations on one existing object.
  if (live_.empty()) {
    ++stats_.skipped;
    return "";
  }
  size_t index = op.target % live_.size();
  if (op.kind == OpKind::kFree) return freeOne(index, "before free");
  if (op.kind == OpKind::kHandOff) return handOff(index);
  const Object& o = live_[index];
  size_t usable = ex_.usableSize(o.p);
  if (usable != o.usable) {
    return describeObject(o) + format(": usable size changed to %zu", usable);
  }
  return "";
}

std::string Model::apply(const Op& op) {
  if (failed()) return violation_;
  std::string e = applyChecked(op);
  ++stats_.executed[static_cast<int>(op.kind) % kOpKindCount];
  if (e.empty() && limits_.fullCheckEvery != 0 && ++opsSinceFullCheck_ >= limits_.fullCheckEvery) {
    opsSinceFullCheck_ = 0;
    e = checkAll();
  }
  if (!e.empty()) violation_ = describe(op) + ": " + e;
  return violation_;
}

std::string Model::run(const std::vector<Op>& ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    std::string e = apply(ops[i]);
    if (!e.empty()) return format("op %zu ", i) + e;
  }
  std::string e = checkAll();
  if (e.empty()) e = releaseAll();
  if (!e.empty()) {
    violation_ = e;
    return "at the end: " + e;
  }
  return "";
}

std::string Model::checkAll() {
  for (const Object& o : live_) {
    std::string e = checkObject(o, o.usable, "in a full check");
    if (!e.empty()) return e;
  }
  return "";
}

std::string Model::releaseAll() {
  while (!live_.empty()) {
    std::string e = freeOne(live_.size() - 1, "before the final free");
    if (!e.empty()) return e;
  }
  return ex_.checkEmpty();
}

}  // namespace mesh::model
